#!/usr/bin/env bash
# Benchmarks of the local cloud's AWS half:
#   a. Secrets Manager GetSecretValue throughput and latency on loopback (wrk replaying one
#      SigV4-signed request, signed by botocore as an IAM user of the world, re-signed every
#      round), beside moto_server's GetSecretValue measured in the same run (ratio).
#   b. `keyway exec --env S00=<aws ref> … (20 refs) -- true` whole-process wall time and peak
#      RSS as an IAM user, beside boto3 doing the same 20 GetSecretValue calls (threads) then
#      running `true`, same run (ratio).
# Release build; everything after set-up runs in a loopback-only network namespace.
#
#   bench/aws.sh [--rounds N] [--seconds S] [--connections C] [--runs R]
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=3 SECONDS_PER=5 CONNS=32 RUNS=20
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) ROUNDS=$2; shift 2 ;;
    --seconds) SECONDS_PER=$2; shift 2 ;;
    --connections) CONNS=$2; shift 2 ;;
    --runs) RUNS=$2; shift 2 ;;
    --inside) INSIDE=1; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done

if [ -z "${INSIDE:-}" ]; then
  command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
  command -v /usr/bin/time >/dev/null || { apt-get update -qq && apt-get install -y -qq time >/dev/null; }
  [ -x .venv/bin/python ] || python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check -r bench/requirements.txt
  cargo build --release --locked --quiet -p keyway
  exec bash scripts/netns.sh bash bench/aws.sh --inside --rounds "$ROUNDS" --seconds "$SECONDS_PER" --connections "$CONNS" --runs "$RUNS"
fi

# Nothing below may look for real AWS: no shared config, no IMDS, explicit endpoints only.
export AWS_EC2_METADATA_DISABLED=true AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_CONFIG_FILE=/dev/null
unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN AWS_PROFILE AWS_ENDPOINT_URL AWS_ENDPOINT_URL_SECRETSMANAGER AWS_ENDPOINT_URL_STS \
  AWS_CONTAINER_CREDENTIALS_RELATIVE_URI AWS_CONTAINER_CREDENTIALS_FULL_URI AWS_WEB_IDENTITY_TOKEN_FILE

KW="$PWD/target/release/keyway"
# Other work on this small machine moves req/s a lot: record how busy it was.
source bench/lib.sh
LOAD=$(load_now)
PY="$PWD/.venv/bin/python"
scratch

# --- a small world: one account, one IAM user, the bench secret and 20 more ----------------------
REGION=us-west-2
python3 - "$WORK/world.toml" "$REGION" <<'PY'
import sys
path, region = sys.argv[1], sys.argv[2]
with open(path, "w") as f:
    f.write('[[aws_account]]\nid = "111122223333"\n')
    f.write('[[aws_user]]\naccount = "111122223333"\nname = "bench"\n')
    f.write("policies = ['''{\"Version\": \"2012-10-17\", \"Statement\": [{\"Effect\": \"Allow\", "
            "\"Action\": [\"secretsmanager:GetSecretValue\", \"sts:GetCallerIdentity\"], \"Resource\": \"*\"}]}''']\n")
    f.write(f'[[aws_secret]]\naccount = "111122223333"\nregion = "{region}"\nname = "bench-secret"\n'
            'versions = [{ string = "a-32-byte-benchmark-secret-value" }]\n')
    for i in range(20):
        f.write(f'[[aws_secret]]\naccount = "111122223333"\nregion = "{region}"\nname = "bench/s{i:02d}"\n'
                f'versions = [{{ string = "value-{i:02d}-0123456789abcdef0123456789abcdef" }}]\n')
PY
"$KW" -q cloud up --world "$WORK/world.toml" --data "$WORK/kw" > /dev/null &
PIDS+=($!); KWPID=$!
wait_file "$WORK/kw/endpoints.json"
"$KW" cloud env --data "$WORK/kw" --aws-user bench > "$WORK/user.env"
# shellcheck disable=SC1091
. "$WORK/user.env"
KW_URL=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["aws"])' "$WORK/kw/endpoints.json")
[ "$AWS_ENDPOINT_URL_SECRETSMANAGER" = "$KW_URL" ] || { echo "cloud env endpoint $AWS_ENDPOINT_URL_SECRETSMANAGER != $KW_URL" >&2; exit 1; }
case "$KW_URL" in http://127.0.0.1:*) ;; *) echo "refusing: AWS endpoint $KW_URL is not loopback" >&2; exit 1 ;; esac

# --- moto_server with the same secret ---------------------------------------------------------------
MOTO_PORT=$(free_port)
.venv/bin/moto_server -H 127.0.0.1 -p "$MOTO_PORT" > "$WORK/moto.log" 2>&1 &
PIDS+=($!)
wait_port "$MOTO_PORT"
MOTO_URL="http://127.0.0.1:$MOTO_PORT"
"$PY" - "$MOTO_URL" <<'PY'
import sys, boto3
c = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-west-2").client("secretsmanager", endpoint_url=sys.argv[1])
c.create_secret(Name="bench-secret", SecretString="a-32-byte-benchmark-secret-value")
PY

# sign URL CREDFILE OUT: one GetSecretValue request signed with botocore's SigV4Auth, checked, saved for wrk.
sign() {
  "$PY" - "$1" "$2" "$3" "$REGION" <<'PY'
import configparser, json, sys, urllib.request
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
url, credfile, out, region = sys.argv[1:5]
if credfile == "-":
    creds = Credentials("testing", "testing")
else:
    c = configparser.ConfigParser(); c.read(credfile); s = c["default"]
    creds = Credentials(s["aws_access_key_id"], s["aws_secret_access_key"], s.get("aws_session_token"))
body = b'{"SecretId":"bench-secret"}'
req = AWSRequest("POST", url + "/", data=body, headers={"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "secretsmanager.GetSecretValue"})
SigV4Auth(creds, "secretsmanager", region).add_auth(req)
headers = dict(req.headers.items())
r = urllib.request.urlopen(urllib.request.Request(url + "/", data=body, headers=headers, method="POST"))
assert json.load(r)["SecretString"] == "a-32-byte-benchmark-secret-value"
with open(out, "wb") as f:
    f.write("".join(f"{k}: {v}\n" for k, v in headers.items() if k.lower() != "host").encode() + b"\n" + body)
PY
}

: > "$WORK/kw.txt"; : > "$WORK/moto.txt"
for _ in $(seq "$ROUNDS"); do
  sign "$KW_URL" "$AWS_SHARED_CREDENTIALS_FILE" "$WORK/kw.req"
  # The cloud's CPU time per request (user+system, from /proc) moves far less with other load
  # on the machine than req/s does; it is printed beside the throughput.
  c0=$(awk '{print $14+$15}' "/proc/$KWPID/stat")
  AWS_REPLAY_FILE="$WORK/kw.req" wrk -t1 -c"$CONNS" -d"${SECONDS_PER}s" --latency -s bench/aws_replay.lua "$KW_URL/" | parse > "$WORK/round.txt"
  c1=$(awk '{print $14+$15}' "/proc/$KWPID/stat")
  echo "$(cat "$WORK/round.txt") $(python3 -c "import sys; r=float(open(sys.argv[1]).read().split()[0]); print(round(($c1-$c0)*1e6/$(getconf CLK_TCK)/(r*$SECONDS_PER), 2))" "$WORK/round.txt")" >> "$WORK/kw.txt"
  sign "$MOTO_URL" - "$WORK/moto.req"
  AWS_REPLAY_FILE="$WORK/moto.req" wrk -t1 -c"$CONNS" -d"${SECONDS_PER}s" --latency -s bench/aws_replay.lua "$MOTO_URL/" | parse >> "$WORK/moto.txt"
done

# --- b. keyway exec with 20 references vs boto3 ---------------------------------------------------
cat > "$WORK/peer.py" <<'PY'
# The same job with boto3: 20 GetSecretValue calls on threads, then run `true` with them in its env.
import os, subprocess, sys
from concurrent.futures import ThreadPoolExecutor
import boto3
n = int(sys.argv[1])
client = boto3.client("secretsmanager")
def get(i):
    return client.get_secret_value(SecretId=f"bench/s{i:02d}")["SecretString"]
env = dict(os.environ)
with ThreadPoolExecutor(16) as ex:
    for i, v in enumerate(ex.map(get, range(n))):
        env[f"S{i:02d}"] = v
sys.exit(subprocess.run(["true"], env=env).returncode)
PY
REFS=()
for i in $(seq 0 19); do REFS+=(--env "$(printf 'S%02d=aws-sm://bench/s%02d' "$i" "$i")"); done
: > "$WORK/exec.txt"
measure keyway-20 "$RUNS" "$KW" -q exec "${REFS[@]}" -- true >> "$WORK/exec.txt"
measure boto3-20 "$((RUNS < 10 ? RUNS : 10))" "$PY" "$WORK/peer.py" 20 >> "$WORK/exec.txt"

python3 - "$WORK/kw.txt" "$WORK/moto.txt" "$WORK/exec.txt" "$CONNS" "$SECONDS_PER" "$RUNS" "$LOAD" <<'PY'
import statistics, sys
LOAD = sys.argv[7]
def load(p): return [tuple(map(float, l.split())) for l in open(p) if l.strip()]
kw, moto = load(sys.argv[1]), load(sys.argv[2])
conns, secs, runs = sys.argv[4], sys.argv[5], sys.argv[6]
med = lambda rows, i: statistics.median(r[i] for r in rows)
print(f"\nSecrets Manager GetSecretValue (SigV4-signed, IAM user) — wrk -t1 -c{conns} -d{secs}s, {len(kw)} rounds each, medians")
print(f"{'':28}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}")
print(f"{'keyway cloud':28}{med(kw,0):>10.0f}{med(kw,1):>10.3f}{med(kw,2):>10.3f}")
print(f"{'moto_server':28}{med(moto,0):>10.0f}{med(moto,1):>10.3f}{med(moto,2):>10.3f}")
print(f"throughput ratio keyway/moto: {med(kw,0)/med(moto,0):.1f}x   (target: keyway >= 30000 req/s)")
print(f"per-round keyway req/s: {[int(r[0]) for r in kw]}   moto: {[int(r[0]) for r in moto]}")
print(f"keyway cloud CPU per request (user+system): median {med(kw,3):.2f} us; load average at start: {LOAD}")
rows = {l.split()[0]: l.split()[1:] for l in open(sys.argv[3]) if l.strip()}
print(f"\nkeyway exec --env S00=aws-sm://… (20 refs) -- true, IAM user against the local cloud, {runs} runs (boto3: up to 10)")
print(f"{'':16}{'median ms':>11}{'p90 ms':>9}{'peak RSS MiB (median/max)':>28}")
for k, (m, p90, rm, rx) in rows.items():
    print(f"{k:16}{float(m):>11.2f}{float(p90):>9.2f}{float(rm)/1024:>18.1f} / {float(rx)/1024:.1f}")
k, p = float(rows["keyway-20"][0]), float(rows["boto3-20"][0])
print(f"20 references: keyway {k:.2f} ms vs boto3 {p:.2f} ms: {p/k:.1f}x faster")
PY
