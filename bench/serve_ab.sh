#!/usr/bin/env bash
# Two keyway builds' brokers side by side (the serving layer's cost per request, A/B), and AWS's
# Secrets Manager Agent, against one local cloud, in a loopback-only namespace: wrk -t2 -cC on the
# cached secret, alternating, ROUNDS rounds of S seconds; for each run `perf stat` on the server's
# pid counts its CPU time, context switches and system calls, divided by the requests served.
# Figures per request do not depend on how much CPU the machine left the run, unlike req/s.
#
#   bench/serve_ab.sh OLD_KEYWAY NEW_KEYWAY [ROUNDS] [SECONDS] [CONNECTIONS]
set -euo pipefail
cd "$(dirname "$0")/.."
OLD=$1 NEW=$2 ROUNDS=${3:-3} SECS=${4:-5} CONNS=${5:-32}
AGENT=${AGENT:-$PWD/../shared/peers/aws-secretsmanager-agent/aws_secretsmanager_agent}
[ -x "$AGENT" ] || AGENT=/work/shared/peers/aws-secretsmanager-agent/aws_secretsmanager_agent
command -v perf >/dev/null || { echo "perf is needed" >&2; exit 1; }
if [ -z "${INSIDE:-}" ]; then
  exec env INSIDE=1 AGENT="$AGENT" bash scripts/netns.sh bash bench/serve_ab.sh "$@"
fi
export AWS_EC2_METADATA_DISABLED=true AWS_CONFIG_FILE=/dev/null NO_GCE_CHECK=true
unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN AWS_PROFILE AWS_ENDPOINT_URL \
  GOOGLE_APPLICATION_CREDENTIALS GCE_METADATA_HOST GCE_METADATA_IP
ulimit -n 8192 2>/dev/null || true
source bench/lib.sh
scratch
export HOME="$WORK/home"; mkdir -p "$HOME"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cat > "$WORK/world.toml" <<'T'
[[aws_account]]
id = "111122223333"

[[aws_user]]
account = "111122223333"
name = "bench"
policies = ['{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["secretsmanager:GetSecretValue", "sts:GetCallerIdentity"], "Resource": "*"}]}']

[[aws_secret]]
account = "111122223333"
region = "us-west-2"
name = "bench-secret"
versions = [{ string = "a-32-byte-benchmark-secret-value" }]
T
"$NEW" cloud up --world "$WORK/world.toml" --data "$WORK/kw" > /dev/null 2> "$WORK/cloud.log" &
PIDS+=($!)
wait_file "$WORK/kw/endpoints.json"
"$NEW" cloud env --data "$WORK/kw" --aws-user bench > "$WORK/user.env"
# shellcheck disable=SC1091
. "$WORK/user.env"
case "$AWS_ENDPOINT_URL_SECRETSMANAGER" in http://127.0.0.1:*) ;; *) echo "not loopback" >&2; exit 1 ;; esac
KEY_ID=$(awk -F' *= *' '/aws_access_key_id/{print $2}' "$AWS_SHARED_CREDENTIALS_FILE")
KEY_SECRET=$(awk -F' *= *' '/aws_secret_access_key/{print $2}' "$AWS_SHARED_CREDENTIALS_FILE")
AGENT_PORT=$(free_port)
head -c 32 /dev/urandom | sha256sum | cut -d' ' -f1 > "$WORK/agent.token"
printf 'log_level = "WARN"\nlog_to_file = false\nhttp_port = "%s"\nttl_seconds = "3600"\ncache_size = "1000"\nregion = "us-west-2"\nvalidate_credentials = true\n' "$AGENT_PORT" > "$WORK/agent.toml"
(cd "$WORK" && AWS_ENDPOINT_URL="$AWS_ENDPOINT_URL_SECRETSMANAGER" AWS_ACCESS_KEY_ID="$KEY_ID" AWS_SECRET_ACCESS_KEY="$KEY_SECRET" \
  AWS_TOKEN="file://$WORK/agent.token" exec "$AGENT" --config "$WORK/agent.toml") > "$WORK/agent.log" 2>&1 &
PIDS+=($!); AGENT_PID=$!
start_broker() { # BIN NAME -> pid in $WORK/NAME.pid, port in $WORK/NAME.port
  local port; port=$(free_port)
  "$1" -q serve --apis secrets --listen "127.0.0.1:$port" --token-file "$WORK/$2.token" \
    --env-file "$WORK/$2.env" --secrets-ttl 3600 > /dev/null 2> "$WORK/$2.log" &
  echo $! > "$WORK/$2.pid"; echo "$port" > "$WORK/$2.port"
  wait_file "$WORK/$2.env"
}
start_broker "$OLD" old; PIDS+=("$(cat "$WORK/old.pid")")
start_broker "$NEW" new; PIDS+=("$(cat "$WORK/new.pid")")
url() { echo "http://127.0.0.1:$1/secretsmanager/get?secretId=bench-secret"; }
for _ in $(seq 100); do curl -sf -H "X-Aws-Parameters-Secrets-Token: $(cat "$WORK/agent.token")" "$(url "$AGENT_PORT")" > /dev/null && break; sleep 0.1; done
: > "$WORK/rows"
TICK_US=$((1000000 / $(getconf CLK_TCK)))
run() { # NAME PID PORT TOKEN_FILE
  local u0 s0 u1 s1
  read -r u0 s0 < <(awk '{print $14, $15}' "/proc/$2/stat")
  perf stat -x, -e task-clock,context-switches,raw_syscalls:sys_enter -p "$2" -o "$WORK/perf.out" -- \
    wrk -t2 -c"$CONNS" -d"${SECS}s" -H "X-Aws-Parameters-Secrets-Token: $(cat "$4")" "$(url "$3")" > "$WORK/wrk.out"
  read -r u1 s1 < <(awk '{print $14, $15}' "/proc/$2/stat")
  python3 - "$1" "$WORK/perf.out" "$WORK/wrk.out" "$(((u1 - u0) * TICK_US))" "$(((s1 - s0) * TICK_US))" >> "$WORK/rows" <<'PY'
import re, sys
name, perf, wrk, user_us, sys_us = sys.argv[1:6]
t = open(wrk).read()
n = int(re.search(r"(\d+) requests in", t).group(1))
if re.search(r"Non-2xx", t): sys.exit("non-2xx answers")
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
c = {}
for line in open(perf):
    f = line.strip().split(",")
    if len(f) > 3 and f[0] and f[0][0].isdigit():
        c[f[2]] = float(f[0])
print(name, rps, c["task-clock"] * 1000 / n, c["context-switches"] / n, c["raw_syscalls:sys_enter"] / n,
      int(user_us) / n, int(sys_us) / n)
PY
}
for _ in $(seq "$ROUNDS"); do
  run agent "$AGENT_PID" "$AGENT_PORT" "$WORK/agent.token"
  run old "$(cat "$WORK/old.pid")" "$(cat "$WORK/old.port")" "$WORK/old.token"
  run new "$(cat "$WORK/new.pid")" "$(cat "$WORK/new.port")" "$WORK/new.token"
done
python3 - "$WORK/rows" "$(cut -d' ' -f1-3 /proc/loadavg)" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
print(f"wrk -t2 on the cached secret; medians per request of the server process (perf stat -p)")
print(f"{'':28}{'req/s':>9}{'CPU us':>9}{'user us':>9}{'sys us':>9}{'ctx sw':>9}{'syscalls':>9}")
names = {"agent": "Secrets Manager Agent 2.0.0", "old": "keyway broker, before", "new": "keyway broker, after"}
for k in ("agent", "old", "new"):
    rs = [r for r in rows if r[0] == k]
    med = lambda i: statistics.median(float(r[i]) for r in rs)
    print(f"{names[k]:28}{med(1):>9.0f}{med(2):>9.2f}{med(5):>9.2f}{med(6):>9.2f}{med(3):>9.3f}{med(4):>9.2f}")
print("load average at the end:", sys.argv[2])
PY
