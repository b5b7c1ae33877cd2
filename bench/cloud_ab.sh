#!/usr/bin/env bash
# Two keyway builds' local clouds side by side (a change to keyway-serve must not slow the cloud's
# listeners): Secret Manager `:access` under wrk -t1 -cC, alternating, ROUNDS rounds of S seconds;
# req/s, p99 and the cloud process's CPU time per request (`/proc/PID/stat`), medians.
#
#   bench/cloud_ab.sh OLD_KEYWAY NEW_KEYWAY [ROUNDS] [SECONDS] [CONNECTIONS]
set -euo pipefail
cd "$(dirname "$0")/.."
OLD=$1 NEW=$2 ROUNDS=${3:-3} SECS=${4:-5} CONNS=${5:-32}
if [ -z "${INSIDE:-}" ]; then exec env INSIDE=1 bash scripts/netns.sh bash bench/cloud_ab.sh "$@"; fi
source bench/lib.sh
scratch
google_world "$WORK/world.toml"
up() { # NAME BIN
  "$2" -q cloud up --world "$WORK/world.toml" --data "$WORK/$1" > /dev/null &
  PIDS+=($!); echo $! > "$WORK/$1.pid"
  wait_file "$WORK/$1/endpoints.json"
  local tok url
  tok=$(user_token "$WORK/$1" bench@example.com)
  url="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["google"])' "$WORK/$1/endpoints.json")/v1/projects/bench-proj/secrets/bench-secret/versions/latest:access"
  curl -sf -H "Authorization: Bearer $tok" "$url" > /dev/null || { echo "$2: :access failed" >&2; exit 1; }
  printf '%s\n%s\n' "$url" "$tok" > "$WORK/$1.req"
}
up old "$OLD"; up new "$NEW"
: > "$WORK/rows"
for _ in $(seq "$ROUNDS"); do
  for n in old new; do
    pid=$(cat "$WORK/$n.pid"); url=$(sed -n 1p "$WORK/$n.req"); tok=$(sed -n 2p "$WORK/$n.req")
    t0=$(ticks "$pid")
    out=$(wrk -t1 -c"$CONNS" -d"${SECS}s" --latency -H "Authorization: Bearer $tok" "$url" | parse)
    t1=$(ticks "$pid")
    echo "$n $out $((t1 - t0))" >> "$WORK/rows"
  done
done
python3 - "$WORK/rows" "$SECS" "$(getconf CLK_TCK)" "$(load_now)" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
secs, hz = float(sys.argv[2]), float(sys.argv[3])
print("Secret Manager :access on the local cloud, wrk -t1; medians")
print(f"{'':10}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'CPU us/req':>12}")
for k in ("old", "new"):
    rs = [r for r in rows if r[0] == k]
    med = lambda f: statistics.median(f(r) for r in rs)
    print(f"{k:10}{med(lambda r: float(r[1])):>9.0f}{med(lambda r: float(r[2])):>9.3f}{med(lambda r: float(r[3])):>9.3f}"
          f"{med(lambda r: float(r[4]) / hz * 1e6 / (float(r[1]) * secs)):>12.2f}")
print("load average at the end:", sys.argv[4])
PY
