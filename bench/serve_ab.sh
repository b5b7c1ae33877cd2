#!/usr/bin/env bash
# Two keyway builds' brokers side by side (the serving layer's cost per request, A/B), and AWS's
# Secrets Manager Agent, against one local cloud, in a loopback-only namespace: wrk -t2 -cC on the
# cached secret, alternating, ROUNDS rounds of S seconds; for each run `perf stat` on the server's
# pid counts its CPU time, context switches and system calls, divided by the requests served;
# then the three servers' resident memory. Both brokers serve gce,secrets, set up as in broker.sh.
# Figures per request do not depend on how much CPU the machine left the run, unlike req/s.
#
#   bench/serve_ab.sh OLD_KEYWAY NEW_KEYWAY [ROUNDS] [SECONDS] [CONNECTIONS]
set -euo pipefail
cd "$(dirname "$0")/.."
OLD=$1 NEW=$2 ROUNDS=${3:-3} SECS=${4:-5} CONNS=${5:-32}
source bench/lib.sh
find_agent
command -v perf >/dev/null || { echo "perf is needed" >&2; exit 1; }
if [ -z "${INSIDE:-}" ]; then
  exec env INSIDE=1 AGENT="$AGENT" bash scripts/netns.sh bash bench/serve_ab.sh "$@"
fi
no_real_clouds
ulimit -n 8192 2>/dev/null || true
scratch
export HOME="$WORK/home"; mkdir -p "$HOME"
broker_world "$WORK/world.toml"
"$NEW" cloud up --world "$WORK/world.toml" --data "$WORK/kw" > /dev/null 2> "$WORK/cloud.log" &
PIDS+=($!)
wait_file "$WORK/kw/endpoints.json"
vm_env "$NEW" "$WORK/kw"
bench_user_env "$NEW" "$WORK/kw"
start_agent
start_broker "$OLD" old gce,secrets "$WORK/vm.env"
start_broker "$NEW" new gce,secrets "$WORK/vm.env"
url() { echo "http://127.0.0.1:$1/secretsmanager/get?secretId=bench-secret"; }
: > "$WORK/rows"
TICK_US=$((1000000 / $(getconf CLK_TCK)))
run() { # NAME PID PORT TOKEN_FILE
  local u0 s0 u1 s1 p99
  read -r u0 s0 < <(awk '{print $14, $15}' "/proc/$2/stat")
  perf stat -x, -e task-clock,context-switches,raw_syscalls:sys_enter -p "$2" -o "$WORK/perf.out" -- \
    wrk -t2 -c"$CONNS" -d"${SECS}s" --latency -H "X-Aws-Parameters-Secrets-Token: $(cat "$4")" "$(url "$3")" > "$WORK/wrk.out"
  read -r u1 s1 < <(awk '{print $14, $15}' "/proc/$2/stat")
  read -r _ _ p99 < <(parse < "$WORK/wrk.out")
  python3 - "$1" "$WORK/perf.out" "$WORK/wrk.out" "$(((u1 - u0) * TICK_US))" "$(((s1 - s0) * TICK_US))" "$p99" >> "$WORK/rows" <<'PY'
import re, sys
name, perf, wrk, user_us, sys_us, p99 = sys.argv[1:7]
t = open(wrk).read()
n = int(re.search(r"(\d+) requests in", t).group(1))
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
c = {}
for line in open(perf):
    f = line.strip().split(",")
    if len(f) > 3 and f[0] and f[0][0].isdigit():
        c[f[2]] = float(f[0])
print(name, rps, c["task-clock"] * 1000 / n, c["context-switches"] / n, c["raw_syscalls:sys_enter"] / n,
      int(user_us) / n, int(sys_us) / n, p99)
PY
}
for _ in $(seq "$ROUNDS"); do
  run agent "$AGENT_PID" "$AGENT_PORT" "$WORK/agent.token"
  run old "$(cat "$WORK/old.pid")" "$(cat "$WORK/old.port")" "$WORK/old.token"
  run new "$(cat "$WORK/new.pid")" "$(cat "$WORK/new.port")" "$WORK/new.token"
done
mem() { awk '$1 == "VmRSS:" {r = $2} $1 == "VmHWM:" {h = $2} END {print r, h}' "/proc/$1/status"; }
{ echo "agent $(mem "$AGENT_PID")"; echo "old $(mem "$(cat "$WORK/old.pid")")"; echo "new $(mem "$(cat "$WORK/new.pid")")"; } > "$WORK/mem"
python3 - "$WORK/rows" "$WORK/mem" "$(load_now)" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
mem = {l.split()[0]: [int(x) / 1024 for x in l.split()[1:]] for l in open(sys.argv[2])}
print("wrk -t2 on the cached secret; medians of req/s, p99 and, per request, of the server process (perf stat -p);")
print("resident memory after the runs (VmRSS, and the peak VmHWM)")
print(f"{'':28}{'req/s':>9}{'p99 ms':>9}{'CPU us':>9}{'user us':>9}{'sys us':>9}{'ctx sw':>9}{'syscalls':>9}{'RSS MiB':>9}{'peak':>7}")
names = {"agent": "Secrets Manager Agent 2.0.0", "old": "keyway broker, before", "new": "keyway broker, after"}
for k in names:
    rs = [r for r in rows if r[0] == k]
    med = lambda i: statistics.median(float(r[i]) for r in rs)
    print(f"{names[k]:28}{med(1):>9.0f}{med(7):>9.3f}{med(2):>9.2f}{med(5):>9.2f}{med(6):>9.2f}{med(3):>9.3f}{med(4):>9.2f}"
          f"{mem[k][0]:>9.1f}{mem[k][1]:>7.1f}")
print("per-round req/s:", {k: [int(float(r[1])) for r in rows if r[0] == k] for k in names})
print("load average at the end:", sys.argv[3])
PY
