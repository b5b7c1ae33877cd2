#!/usr/bin/env bash
# Benchmark of the broker (`keyway serve`) beside AWS's Secrets Manager Agent
# (../shared/peers/aws-secretsmanager-agent), both against the same local cloud, same run:
#   a. cached-secret requests (GET /secretsmanager/get?secretId=…, the token header), wrk -t2 -cC,
#      agent and broker alternating, ROUNDS rounds each; medians of req/s, p50 and p99;
#   b. cached-token requests on the broker's GCE metadata API (…/service-accounts/default/token);
#   c. resident memory of both after the runs (VmRSS, and the peak VmHWM);
#   d. 1,000 concurrent callers (1,000 connections, requests back to back) on the token
#      endpoint for BURST seconds while tokens live 20 s: the upstream token requests counted at
#      the local cloud (its metadata server's debug log) against the refreshes due in the window.
# Targets (issue 10): >= 1.5x the agent's cache-hit throughput, p99 no worse than the agent's,
# broker RSS < 12 MiB, one upstream refresh per expiry whatever the number of callers.
# Release build; everything after set-up runs in a loopback-only network namespace.
#
#   bench/broker.sh [--rounds N] [--seconds S] [--connections C] [--burst S]
# KW=/path/to/keyway measures that binary instead of building target/release/keyway (e.g. an
# earlier commit's build, for a before/after comparison).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=3 SECONDS_PER=10 CONNS=32 BURST=25
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) ROUNDS=$2; shift 2 ;;
    --seconds) SECONDS_PER=$2; shift 2 ;;
    --connections) CONNS=$2; shift 2 ;;
    --burst) BURST=$2; shift 2 ;;
    --inside) INSIDE=1; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
source bench/lib.sh
find_agent

if [ -z "${INSIDE:-}" ]; then
  command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
  [ -n "${KW:-}" ] || cargo build --release --locked --quiet -p keyway
  exec env AGENT="$AGENT" KW="${KW:-}" bash scripts/netns.sh bash bench/broker.sh --inside --rounds "$ROUNDS" --seconds "$SECONDS_PER" --connections "$CONNS" --burst "$BURST"
fi

no_real_clouds
ulimit -n 8192 2>/dev/null || ulimit -n "$(ulimit -Hn)"
KW=${KW:-$PWD/target/release/keyway}
LOAD=$(load_now)
scratch
export HOME="$WORK/home"; mkdir -p "$HOME"

# --- the world: a VM with a service account (the broker's Google side), an IAM user and a secret
broker_world "$WORK/world.toml"
KEYWAY_LOG=warn,keyway_cloud::metadata=debug "$KW" cloud up --world "$WORK/world.toml" --data "$WORK/kw" > /dev/null 2> "$WORK/cloud.log" &
PIDS+=($!)
wait_file "$WORK/kw/endpoints.json"
vm_env "$KW" "$WORK/kw"
bench_user_env "$KW" "$WORK/kw"

# --- the agent, as its README runs it against the local cloud, and the broker -------------------------
start_agent
start_broker "$KW" broker gce,secrets "$WORK/vm.env"
BROKER_PID=$(cat "$WORK/broker.pid") BROKER_PORT=$(cat "$WORK/broker.port")

AGENT_URL="http://127.0.0.1:$AGENT_PORT/secretsmanager/get?secretId=bench-secret"
BROKER_URL="http://127.0.0.1:$BROKER_PORT/secretsmanager/get?secretId=bench-secret"
TOKEN_URL="http://127.0.0.1:$BROKER_PORT/computeMetadata/v1/instance/service-accounts/default/token"
AH="X-Aws-Parameters-Secrets-Token: $(cat "$WORK/agent.token")"
BH="X-Aws-Parameters-Secrets-Token: $(cat "$WORK/broker.token")"
curl -sf -H "$BH" "$BROKER_URL" > "$WORK/broker.json"
curl -sf -H "Metadata-Flavor: Google" "$TOKEN_URL" > /dev/null
python3 - "$WORK/agent.json" "$WORK/broker.json" <<'PY'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
assert a == b, f"the agent and the broker answer differently:\n{a}\n{b}"
assert a["SecretString"] == "a-32-byte-benchmark-secret-value"
PY

: > "$WORK/agent.txt"; : > "$WORK/broker.txt"; : > "$WORK/gce.txt"
TICK_US=$((1000000 / $(getconf CLK_TCK)))
# bench PID HEADER URL -> "rps p50 p99 server_us wrk_us": wrk's figures, then the CPU time
# (user + system) the server and wrk each spent per request during the run.
bench() {
  local pid=$1 header=$2 url=$3 t0 t1
  t0=$(ticks "$pid")
  /usr/bin/time -f '%U %S' -o "$WORK/wrk.cpu" \
    wrk -t2 -c"$CONNS" -d"${SECONDS_PER}s" --latency -H "$header" "$url" > "$WORK/wrk.out"
  t1=$(ticks "$pid")
  read -r rps p50 p99 < <(parse < "$WORK/wrk.out")
  read -r wu ws < "$WORK/wrk.cpu"
  python3 -c 'import sys; rps, p50, p99, dt, tick, wu, ws, secs = map(float, sys.argv[1:]); n = rps * secs
print(f"{rps:.0f} {p50:.3f} {p99:.3f} {dt * tick / n:.2f} {(wu + ws) * 1e6 / n:.2f}")' \
    "$rps" "$p50" "$p99" "$((t1 - t0))" "$TICK_US" "$wu" "$ws" "$SECONDS_PER"
}
for _ in $(seq "$ROUNDS"); do
  bench "$AGENT_PID" "$AH" "$AGENT_URL" >> "$WORK/agent.txt"
  bench "$BROKER_PID" "$BH" "$BROKER_URL" >> "$WORK/broker.txt"
  bench "$BROKER_PID" "Metadata-Flavor: Google" "$TOKEN_URL" >> "$WORK/gce.txt"
done
mem() { awk -v k="$2" '$1 == k":" {print $2}' "/proc/$1/status"; }
echo "$(mem "$AGENT_PID" VmRSS) $(mem "$AGENT_PID" VmHWM) $(mem "$BROKER_PID" VmRSS) $(mem "$BROKER_PID" VmHWM)" > "$WORK/mem.txt"

# --- d. 1,000 callers on the token endpoint across token expiries --------------------------------------
before=$(grep -c 'service-accounts/default/token' "$WORK/cloud.log" || true)
python3 - "$BROKER_PORT" "$BURST" > "$WORK/burst.txt" <<'PY'
import asyncio, json, sys, time
port, burst = int(sys.argv[1]), float(sys.argv[2])
req = (b"GET /computeMetadata/v1/instance/service-accounts/default/token HTTP/1.1\r\n"
       b"Host: 127.0.0.1\r\nMetadata-Flavor: Google\r\n\r\n")
stats = {"ok": 0, "errors": 0, "tokens": set()}
async def caller(deadline):
    r, w = await asyncio.open_connection("127.0.0.1", port)
    while time.monotonic() < deadline:
        w.write(req)
        head = await r.readuntil(b"\r\n\r\n")
        n = int([l for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")][0].split(b":")[1])
        body = await r.readexactly(n)
        if head.startswith(b"HTTP/1.1 200"):
            stats["ok"] += 1
            stats["tokens"].add(json.loads(body)["access_token"])
        else:
            stats["errors"] += 1
    w.close()
async def main():
    deadline = time.monotonic() + burst
    await asyncio.gather(*(caller(deadline) for _ in range(1000)))
asyncio.run(main())
print(stats["ok"], stats["errors"], len(stats["tokens"]))
PY
after=$(grep -c 'service-accounts/default/token' "$WORK/cloud.log" || true)
echo "$((after - before))" >> "$WORK/burst.txt"

python3 - "$WORK" "$CONNS" "$SECONDS_PER" "$LOAD" "$BURST" <<'PY'
import statistics, sys
work, conns, secs, load, burst = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5])
rows = lambda n: [tuple(map(float, l.split())) for l in open(f"{work}/{n}.txt") if l.strip()]
ag, br, gce = rows("agent"), rows("broker"), rows("gce")
med = lambda rs, i: statistics.median(r[i] for r in rs)
print(f"\nCached requests on loopback — wrk -t2 -c{conns} -d{secs}s, {len(ag)} rounds each, alternating, medians")
print("(CPU: user + system time per request, in microseconds, of the server and of wrk, during the run)")
print(f"{'':50}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'srv CPU':>9}{'wrk CPU':>9}")
for label, rs in (("Secrets Manager Agent 2.0.0 (secretsmanager/get)", ag),
                  ("keyway broker (secretsmanager/get)", br), ("keyway broker (GCE token)", gce)):
    print(f"{label:50}{med(rs,0):>9.0f}{med(rs,1):>9.3f}{med(rs,2):>9.3f}{med(rs,3):>9.2f}{med(rs,4):>9.2f}")
ratio = med(br, 0) / med(ag, 0)
print(f"throughput ratio broker/agent: {ratio:.2f}x (target >= 1.5x: {'met' if ratio >= 1.5 else 'NOT met'}); "
      f"p99 {med(br,2):.3f} vs {med(ag,2):.3f} ms ({'met' if med(br,2) <= med(ag,2) else 'NOT met'})")
print(f"per-round req/s agent: {[int(r[0]) for r in ag]}  broker: {[int(r[0]) for r in br]}  token: {[int(r[0]) for r in gce]}")
a_rss, a_hwm, b_rss, b_hwm = (int(x) / 1024 for x in open(f"{work}/mem.txt").read().split())
print(f"resident memory after the runs: agent {a_rss:.1f} MiB (peak {a_hwm:.1f}), broker {b_rss:.1f} MiB (peak {b_hwm:.1f}) "
      f"(target broker < 12 MiB: {'met' if b_hwm < 12 else 'NOT met'})")
ok, errors, tokens, upstream = (int(x) for x in open(f"{work}/burst.txt").read().split())
due = burst / 10
verdict = "met" if upstream <= int(due) + 1 and upstream <= tokens else "NOT met"
print(f"1,000 concurrent callers on the token endpoint for {burst:.0f} s (tokens live 20 s, refreshed at half-life, "
      f"{due:.1f} refreshes due): {ok} answers, {errors} errors, {tokens} distinct tokens served, "
      f"{upstream} upstream token requests (target one per refresh: {verdict})")
print(f"load average at start: {load}")
PY
