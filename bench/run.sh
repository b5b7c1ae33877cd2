#!/usr/bin/env bash
# Benchmarks of the local cloud (issue: "The local cloud, Google half"):
#   1. Secret Manager `:access` throughput and latency on loopback, load from wrk,
#      beside moto_server's GetSecretValue measured in the same run (ratio).
#   2. Resident memory of the local cloud holding 10,000 secrets.
# Release build; everything after set-up runs in a loopback-only network namespace.
#
#   bench/run.sh [--rounds N] [--seconds S] [--connections C]
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=3 SECONDS_PER=6 CONNS=32
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) ROUNDS=$2; shift 2 ;;
    --seconds) SECONDS_PER=$2; shift 2 ;;
    --connections) CONNS=$2; shift 2 ;;
    --inside) INSIDE=1; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done

if [ -z "${INSIDE:-}" ]; then
  command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
  [ -x .venv/bin/python ] || python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check -r bench/requirements.txt
  cargo build --release --locked --quiet -p keyway
  exec bash scripts/netns.sh bash bench/run.sh --inside --rounds "$ROUNDS" --seconds "$SECONDS_PER" --connections "$CONNS"
fi

KW="$PWD/target/release/keyway"
source bench/lib.sh
scratch


# --- keyway cloud with one secret and an owner -------------------------------------------------
google_world "$WORK/world.toml"
"$KW" -q cloud up --world "$WORK/world.toml" --data "$WORK/kw" > /dev/null &
PIDS+=($!); KWPID=$!
wait_file "$WORK/kw/endpoints.json"
BASE=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["google"])' "$WORK/kw/endpoints.json")
TOKEN=$(user_token "$WORK/kw" bench@example.com)
KW_URL="$BASE/v1/projects/bench-proj/secrets/bench-secret/versions/latest:access"
# The request must succeed before it is worth timing.
python3 - "$KW_URL" "$TOKEN" <<'PY'
import sys, urllib.request, json, base64
r = urllib.request.urlopen(urllib.request.Request(sys.argv[1], headers={"Authorization": "Bearer " + sys.argv[2]}))
assert base64.b64decode(json.load(r)["payload"]["data"]) == b"a-32-byte-benchmark-secret-value"
PY

# --- moto_server with the same secret -------------------------------------------------------------
MOTO_PORT=$(free_port)
.venv/bin/moto_server -H 127.0.0.1 -p "$MOTO_PORT" > "$WORK/moto.log" 2>&1 &
PIDS+=($!)
wait_port "$MOTO_PORT"
AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE AWS_SECRET_ACCESS_KEY=x AWS_EC2_METADATA_DISABLED=true .venv/bin/python - "$MOTO_PORT" <<'PY'
import sys, boto3
c = boto3.client("secretsmanager", region_name="us-east-1", endpoint_url=f"http://127.0.0.1:{sys.argv[1]}")
c.create_secret(Name="bench-secret", SecretString="a-32-byte-benchmark-secret-value")
assert c.get_secret_value(SecretId="bench-secret")["SecretString"] == "a-32-byte-benchmark-secret-value"
PY

# --- rounds, alternating ------------------------------------------------------------------------------
: > "$WORK/kw.txt"; : > "$WORK/moto.txt"
for r in $(seq "$ROUNDS"); do
  wrk -t1 -c"$CONNS" -d"${SECONDS_PER}s" --latency -H "Authorization: Bearer $TOKEN" "$KW_URL" | parse >> "$WORK/kw.txt"
  wrk -t1 -c"$CONNS" -d"${SECONDS_PER}s" --latency -s bench/moto_get_secret_value.lua "http://127.0.0.1:$MOTO_PORT/" | parse >> "$WORK/moto.txt"
done

# --- memory with 10,000 secrets ----------------------------------------------------------------------
python3 - "$WORK/big.toml" <<'PY'
import sys
with open(sys.argv[1], "w") as f:
    f.write('[[project]]\nid = "mem-proj"\nnumber = 4444444444\n[[user]]\nemail = "m@example.com"\n')
    f.write('[[binding]]\nresource = "projects/mem-proj"\nrole = "roles/owner"\nmembers = ["user:m@example.com"]\n')
    for i in range(10000):
        f.write(f'[[secret]]\nproject = "mem-proj"\nname = "secret-{i:05d}"\nlabels = {{ app = "bench" }}\nversions = [{{ data = "value-{i:05d}-0123456789abcdef0123456789abcdef" }}]\n')
PY
START=$(date +%s.%N)
"$KW" -q cloud up --world "$WORK/big.toml" --data "$WORK/big" > /dev/null &
PIDS+=($!); BIGPID=$!
wait_file "$WORK/big/endpoints.json"
SEED_S=$(python3 -c "print(f'{$(date +%s.%N) - $START:.2f}')")
kill "$BIGPID"; wait "$BIGPID" 2>/dev/null || true
# Restart: the 10,000 secrets now load from the store, as after any restart.
"$KW" -q cloud up --data "$WORK/big" > /dev/null &
PIDS+=($!); BIGPID=$!
wait_file "$WORK/big/endpoints.json"
BIGBASE=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["google"])' "$WORK/big/endpoints.json")
BIGTOKEN=$(user_token "$WORK/big" m@example.com)
# Touch every secret once (list all pages, access a tenth of them) so memory reflects use, not just load.
python3 - "$BIGBASE" "$BIGTOKEN" <<'PY'
import json, sys, urllib.request
base, tok = sys.argv[1], sys.argv[2]
get = lambda p: json.load(urllib.request.urlopen(urllib.request.Request(base + p, headers={"Authorization": "Bearer " + tok})))
n, page = 0, ""
while True:
    r = get(f"/v1/projects/mem-proj/secrets?pageSize=1000&pageToken={page}")
    n += len(r["secrets"]); page = r.get("nextPageToken", "")
    if not page: break
assert n == 10000, n
for i in range(0, 10000, 10):
    get(f"/v1/projects/mem-proj/secrets/secret-{i:05d}/versions/latest:access")
PY
RSS_KB=$(awk '/^VmRSS/ {print $2}' /proc/$BIGPID/status)
HWM_KB=$(awk '/^VmHWM/ {print $2}' /proc/$BIGPID/status)

python3 - "$WORK/kw.txt" "$WORK/moto.txt" "$RSS_KB" "$HWM_KB" "$SEED_S" "$CONNS" "$SECONDS_PER" <<'PY'
import statistics, sys
def load(p): return [tuple(map(float, l.split())) for l in open(p) if l.strip()]
kw, moto = load(sys.argv[1]), load(sys.argv[2])
med = lambda rows, i: statistics.median(r[i] for r in rows)
rss, hwm, seed, conns, secs = int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], sys.argv[6], sys.argv[7]
print(f"\nSecret Manager :access vs moto GetSecretValue — wrk -t1 -c{conns} -d{secs}s, {len(kw)} rounds each, medians")
print(f"{'':24}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}")
print(f"{'keyway cloud :access':24}{med(kw,0):>10.0f}{med(kw,1):>10.3f}{med(kw,2):>10.3f}")
print(f"{'moto GetSecretValue':24}{med(moto,0):>10.0f}{med(moto,1):>10.3f}{med(moto,2):>10.3f}")
print(f"throughput ratio keyway/moto: {med(kw,0)/med(moto,0):.1f}x   (target: keyway >= 30000 req/s, p99 < 5 ms)")
print(f"per-round keyway req/s: {[int(r[0]) for r in kw]}   moto: {[int(r[0]) for r in moto]}")
print(f"\nLocal cloud holding 10,000 secrets: VmRSS {rss/1024:.1f} MiB, peak VmHWM {hwm/1024:.1f} MiB (target < 100 MB); first start with seeding {seed} s")
PY
