# Shared by the benchmark scripts (sourced, not run).

# parse: wrk --latency output on stdin -> "rps p50_ms p99_ms"; fails on any non-2xx answer.
parse() {
  python3 -c '
import re, sys
t = sys.stdin.read()
def ms(label):
    m = re.search(r"^\s*" + label + r"\s+([\d.]+)(us|ms|s)\s*$", t, re.M)
    v, u = float(m.group(1)), m.group(2)
    return v / 1000 if u == "us" else v * 1000 if u == "s" else v
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
errs = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", t)
if errs: sys.exit("non-2xx responses: " + errs.group(1))
p50, p99 = ms("50%"), ms("99%")
print(f"{rps:.0f} {p50:.3f} {p99:.3f}")'
}

# measure LABEL RUNS CMD... -> "LABEL median_ms p90_ms rss_median_kib rss_max_kib"
# Whole-process wall time and peak RSS (/usr/bin/time -f %M) over RUNS runs;
# the command must succeed once before it is timed.
measure() {
  local label=$1 runs=$2; shift 2
  "$@" >/dev/null 2>&1 || { echo "$label: the command failed:" >&2; "$@" >&2; exit 1; }
  python3 - "$label" "$runs" "$@" <<'PY'
import statistics, subprocess, sys, time
label, runs, cmd = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
walls, rss = [], []
for _ in range(runs):
    t = time.perf_counter()
    p = subprocess.run(["/usr/bin/time", "-f", "%M"] + cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    walls.append((time.perf_counter() - t) * 1000)
    if p.returncode != 0: sys.exit(f"{label}: exit {p.returncode}: {p.stderr[-500:]}")
    rss.append(int(p.stderr.strip().splitlines()[-1]))
walls.sort()
print(f"{label} {statistics.median(walls):.2f} {walls[max(0, int(len(walls)*0.9)-1)]:.2f} {statistics.median(rss)} {max(rss)}")
PY
}

# A scratch directory ($WORK) removed at exit, after every server whose PID is
# in PIDS is stopped and waited for. Call once, after sourcing this file.
scratch() {
  WORK=$(mktemp -d)
  PIDS=()
  trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; rm -rf "$WORK"' EXIT
}

# Waits (up to 20 s) until file $1 exists and is not empty.
wait_file() { for _ in $(seq 400); do [ -s "$1" ] && return 0; sleep 0.05; done; echo "timed out waiting for $1" >&2; return 1; }

# An unused TCP port on 127.0.0.1.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Waits (up to 10 s) until something listens on 127.0.0.1:$1.
wait_port() {
  for _ in $(seq 200); do python3 -c "import socket; socket.create_connection(('127.0.0.1', $1), 0.2)" 2>/dev/null && return 0; sleep 0.05; done
  echo "nothing listens on 127.0.0.1:$1" >&2; return 1
}

# CPU time (user + system, clock ticks) of process $1 so far.
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# The three load averages now.
load_now() { cut -d' ' -f1-3 /proc/loadavg; }

# Nothing after this may look for real clouds: no shared AWS config, no instance metadata
# (AWS's or Google's), no ambient keys or endpoints; explicit loopback endpoints only.
no_real_clouds() {
  export AWS_EC2_METADATA_DISABLED=true AWS_CONFIG_FILE=/dev/null NO_GCE_CHECK=true
  unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN AWS_PROFILE AWS_ENDPOINT_URL \
    AWS_CONTAINER_CREDENTIALS_RELATIVE_URI AWS_CONTAINER_CREDENTIALS_FULL_URI AWS_WEB_IDENTITY_TOKEN_FILE \
    GOOGLE_APPLICATION_CREDENTIALS GCE_METADATA_HOST GCE_METADATA_IP
}

# google_world FILE: a local-cloud world with project bench-proj, its owner bench@example.com and
# one Secret Manager secret, bench-secret (the 32-byte benchmark value).
google_world() {
  cat > "$1" <<'TOML'
[[project]]
id = "bench-proj"
number = 3333333333
[[user]]
email = "bench@example.com"
[[binding]]
resource = "projects/bench-proj"
role = "roles/owner"
members = ["user:bench@example.com"]
[[secret]]
project = "bench-proj"
name = "bench-secret"
versions = [{ data = "a-32-byte-benchmark-secret-value" }]
TOML
}

# user_token DATA EMAIL: an access token for user EMAIL of the local cloud whose data directory is
# DATA, from the refresh token in the user's application-default credentials.
user_token() {
  python3 - "$1/users/$2/gcloud/application_default_credentials.json" <<'PY'
import json, sys, urllib.parse, urllib.request
a = json.load(open(sys.argv[1]))
body = urllib.parse.urlencode({"grant_type": "refresh_token", "client_id": a["client_id"], "client_secret": a["client_secret"], "refresh_token": a["refresh_token"]}).encode()
print(json.load(urllib.request.urlopen(a["token_uri"], body))["access_token"])
PY
}

# aws_world FILE: account 111122223333, its IAM user bench (allowed GetSecretValue, DescribeSecret
# and GetCallerIdentity) and one Secrets Manager secret, bench-secret in us-west-2 (the
# 32-byte benchmark value). A caller may append more of a world to FILE.
aws_world() {
  cat > "$1" <<'TOML'
[[aws_account]]
id = "111122223333"

[[aws_user]]
account = "111122223333"
name = "bench"
policies = ['{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret", "sts:GetCallerIdentity"], "Resource": "*"}]}']

[[aws_secret]]
account = "111122223333"
region = "us-west-2"
name = "bench-secret"
versions = [{ string = "a-32-byte-benchmark-secret-value" }]
TOML
}

# bench_user_env KW DATA: exports the IAM user bench's environment from the local cloud in DATA
# (its endpoints and credentials file), refusing an endpoint that is not loopback; KEY_ID and
# KEY_SECRET are set to its key.
bench_user_env() {
  "$1" cloud env --data "$2" --aws-user bench > "$WORK/user.env"
  # shellcheck disable=SC1091
  . "$WORK/user.env"
  case "$AWS_ENDPOINT_URL_SECRETSMANAGER" in http://127.0.0.1:*) ;; *) echo "refusing: $AWS_ENDPOINT_URL_SECRETSMANAGER is not loopback" >&2; exit 1 ;; esac
  KEY_ID=$(awk -F' *= *' '/aws_access_key_id/{print $2}' "$AWS_SHARED_CREDENTIALS_FILE")
  KEY_SECRET=$(awk -F' *= *' '/aws_secret_access_key/{print $2}' "$AWS_SHARED_CREDENTIALS_FILE")
}

# AWS's Secrets Manager Agent build: $AGENT, else beside the project in ../shared/peers, else
# /work/shared/peers.
find_agent() {
  AGENT=${AGENT:-$PWD/../shared/peers/aws-secretsmanager-agent/aws_secretsmanager_agent}
  [ -x "$AGENT" ] || AGENT=/work/shared/peers/aws-secretsmanager-agent/aws_secretsmanager_agent
  [ -x "$AGENT" ] || { echo "the Secrets Manager Agent build is not at $AGENT (set AGENT=...)" >&2; exit 1; }
}

# start_agent: AWS's Secrets Manager Agent as its README runs it, against the local cloud, as the
# IAM user of bench_user_env (call that first); cache TTL 3600 s. Sets AGENT_PORT and AGENT_PID;
# its token is in $WORK/agent.token. Returns once it answers for bench-secret.
start_agent() {
  AGENT_PORT=$(free_port)
  head -c 32 /dev/urandom | sha256sum | cut -d' ' -f1 > "$WORK/agent.token"
  printf 'log_level = "WARN"\nlog_to_file = false\nhttp_port = "%s"\nttl_seconds = "3600"\ncache_size = "1000"\nregion = "us-west-2"\nvalidate_credentials = true\n' \
    "$AGENT_PORT" > "$WORK/agent.toml"
  (cd "$WORK" && AWS_ENDPOINT_URL="$AWS_ENDPOINT_URL_SECRETSMANAGER" AWS_ACCESS_KEY_ID="$KEY_ID" AWS_SECRET_ACCESS_KEY="$KEY_SECRET" \
    AWS_TOKEN="file://$WORK/agent.token" exec "$AGENT" --config "$WORK/agent.toml") > "$WORK/agent.log" 2>&1 &
  PIDS+=($!); AGENT_PID=$!
  local url="http://127.0.0.1:$AGENT_PORT/secretsmanager/get?secretId=bench-secret"
  for _ in $(seq 100); do
    curl -sf -H "X-Aws-Parameters-Secrets-Token: $(cat "$WORK/agent.token")" "$url" > "$WORK/agent.json" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "the agent did not answer on $url (see below)" >&2; cat "$WORK/agent.log" >&2; return 1
}

# start_broker KW NAME APIS [ENV_FILE]: `KW serve --apis APIS` on a free loopback port, with the
# variables of ENV_FILE (if given) added to its environment; secrets cached 3600 s. Its pid goes
# in $WORK/NAME.pid (and PIDS), its port in $WORK/NAME.port, its token in $WORK/NAME.token, its
# log in $WORK/NAME.log; returns once it is ready.
start_broker() {
  local port; port=$(free_port)
  ( [ -z "${4:-}" ] || . "$4"; exec "$1" -q serve --apis "$3" --listen "127.0.0.1:$port" --token-file "$WORK/$2.token" \
    --env-file "$WORK/$2.env" --secrets-ttl 3600 ) > /dev/null 2> "$WORK/$2.log" &
  PIDS+=($!); echo $! > "$WORK/$2.pid"; echo "$port" > "$WORK/$2.port"
  wait_file "$WORK/$2.env"
}

# broker_world FILE: aws_world's IAM user and secret, and a VM, bench-vm, whose service account
# (bench-runner@bench-proj.iam.gserviceaccount.com) is the broker's Google side; access tokens
# live 20 s.
broker_world() {
  aws_world "$1"
  cat >> "$1" <<'TOML'

[settings]
token_lifetime_secs = 20

[[project]]
id = "bench-proj"
number = 210000000001

[[service_account]]
project = "bench-proj"
name = "bench-runner"

[[instance]]
project = "bench-proj"
zone = "us-central1-a"
name = "bench-vm"
service_account = "bench-runner@bench-proj.iam.gserviceaccount.com"
scopes = ["cloud-platform"]
TOML
}

# vm_env KW DATA: writes to $WORK/vm.env the variables that point Google's clients at the
# metadata server of bench-vm in the local cloud whose data directory is DATA.
vm_env() {
  "$1" cloud env --data "$2" --instance bench-vm | grep -E '^export GCE_METADATA_(HOST|IP)=' > "$WORK/vm.env"
}
