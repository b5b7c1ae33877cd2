#!/usr/bin/env bash
# Benchmark of keyless Google token acquisition through Workload Identity
# Federation, as an ECS task does it: ECS container credentials → a signed
# GetCallerIdentity exchanged at STS → IAM Credentials generateAccessToken for a
# service account; all on loopback against the local cloud. In process:
#   keyway       crates/auth/benches/federation.rs (keyway_auth::google_default + access_token)
#   google-auth  bench/federation_peer.py (the official Python library, same config file),
#                given the task role's credentials as AWS_* variables (it cannot read ECS's)
# Cold: fresh credentials per acquisition, over new connections and over kept-alive
# ones. Cached: the token again from one credentials object. Rounds alternate
# keyway / google-auth against one local cloud; the table shows medians over rounds.
# Targets (issue): cold < 5 ms, cached < 50 µs.
# Release build; everything after set-up runs in a loopback-only network namespace.
#
#   bench/federation.sh [--rounds N] [--cold N] [--cached N]
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=3 COLD=300 CACHED=100000
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) ROUNDS=$2; shift 2 ;;
    --cold) COLD=$2; shift 2 ;;
    --cached) CACHED=$2; shift 2 ;;
    --inside) INSIDE=1; shift ;;
    --bench-bin) BENCH_BIN=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done

if [ -z "${INSIDE:-}" ]; then
  [ -x .venv/bin/python ] || python3 -m venv .venv
  .venv/bin/python -c 'import google.auth, requests' 2>/dev/null \
    || .venv/bin/pip install --quiet --disable-pip-version-check 'google-auth[requests]==2.62.2'
  cargo build --release --locked --quiet -p keyway
  BENCH_BIN=$(cargo bench --locked --quiet --no-run -p keyway-auth --bench federation --message-format=json \
    | python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "federation" and m.get("executable"): print(m["executable"])')
  [ -x "$BENCH_BIN" ] || { echo "could not build the federation bench" >&2; exit 1; }
  exec bash scripts/netns.sh bash bench/federation.sh --inside --rounds "$ROUNDS" --cold "$COLD" --cached "$CACHED" --bench-bin "$BENCH_BIN"
fi

# Nothing below may look for real AWS or Google: no shared files, no IMDS, no metadata server.
export AWS_EC2_METADATA_DISABLED=true AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_CONFIG_FILE=/dev/null NO_GCE_CHECK=True
unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN AWS_PROFILE AWS_ENDPOINT_URL AWS_ENDPOINT_URL_STS \
  AWS_CONTAINER_CREDENTIALS_RELATIVE_URI AWS_CONTAINER_CREDENTIALS_FULL_URI AWS_CONTAINER_AUTHORIZATION_TOKEN \
  AWS_WEB_IDENTITY_TOKEN_FILE GOOGLE_APPLICATION_CREDENTIALS GCE_METADATA_HOST GCE_METADATA_IP

KW="$PWD/target/release/keyway"
PY="$PWD/.venv/bin/python"
source bench/lib.sh
scratch

"$KW" -q cloud up --world bench/worlds/federation.toml --data "$WORK/kw" > /dev/null &
PIDS+=($!)
wait_file "$WORK/kw/endpoints.json"
G=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["google"].rstrip("/"))' "$WORK/kw/endpoints.json")
case "$G" in http://127.0.0.1:*) ;; *) echo "refusing: Google endpoint $G is not loopback" >&2; exit 1 ;; esac

# The peer's environment: the ECS task's, with the task role's credentials copied out of the
# container endpoint into AWS_* variables and the endpoint variables removed.
peer() {
  (
    eval "$("$KW" cloud env --data "$WORK/kw" --task bench-task)"
    eval "$(python3 - <<'PY'
import json, os, shlex, urllib.request
uri = os.environ["AWS_CONTAINER_CREDENTIALS_FULL_URI"]
assert uri.startswith("http://127.0.0.1:"), uri
req = urllib.request.Request(uri, headers={"Authorization": os.environ["AWS_CONTAINER_AUTHORIZATION_TOKEN"]})
c = json.load(urllib.request.urlopen(req, timeout=5))
for k, v in (("AWS_ACCESS_KEY_ID", c["AccessKeyId"]), ("AWS_SECRET_ACCESS_KEY", c["SecretAccessKey"]), ("AWS_SESSION_TOKEN", c["Token"])):
    print(f"export {k}={shlex.quote(v)}")
PY
)"
    unset AWS_CONTAINER_CREDENTIALS_FULL_URI AWS_CONTAINER_AUTHORIZATION_TOKEN
    "$PY" bench/federation_peer.py --config "$WORK/kw/fedbench/credentials.json" --google "$G" --cold "$COLD" --cached "$CACHED"
  )
}

: > "$WORK/results.txt"
for r in $(seq "$ROUNDS"); do
  echo "# round $r/$ROUNDS" >&2
  # keyway writes the credential configuration the peer then reads.
  "$BENCH_BIN" --keyway "$KW" --data "$WORK/kw" --cold "$COLD" --cached "$CACHED" | tee -a "$WORK/results.txt" >&2
  peer | tee -a "$WORK/results.txt" >&2
done

python3 - "$WORK/results.txt" "$ROUNDS" "$COLD" "$CACHED" <<'PY'
import json, statistics, sys
path, rounds, cold, cached = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
rows = {}
for line in open(path):
    if line.startswith("RESULT "):
        r = json.loads(line[7:])
        rows.setdefault((r["impl"], r["case"]), []).append(r)
med = lambda impl, case, k: statistics.median(r[k] for r in rows[(impl, case)])
fmt = lambda us: f"{us/1000:.2f} ms" if us >= 1000 else f"{us:.2f} µs"
print(f"\nWorkload Identity Federation, ECS task → STS → generateAccessToken on loopback, in process;")
print(f"{rounds} rounds alternating, {cold} cold acquisitions / {cached} cached calls per round; medians over rounds")
print(f"{'':34}{'keyway median':>15}{'p99':>12}{'google-auth median':>20}{'p99':>12}{'ratio':>9}")
names = {"cold_new_conn": "cold, new connections", "cold_pooled": "cold, kept-alive connections", "cached": "cached token"}
for case, name in names.items():
    k, kp, g, gp = med("keyway", case, "median_us"), med("keyway", case, "p99_us"), med("google-auth", case, "median_us"), med("google-auth", case, "p99_us")
    print(f"{name:34}{fmt(k):>15}{fmt(kp):>12}{fmt(g):>20}{fmt(gp):>12}{g/k:>8.1f}x")
print(f"(google-auth cached is before_request(), its per-request validity check; a bare .token attribute read costs {fmt(med('google-auth', 'cached_attr', 'mean_us'))})")
c1, c2, ca = med("keyway", "cold_new_conn", "median_us"), med("keyway", "cold_pooled", "median_us"), med("keyway", "cached", "median_us")
ok = lambda b: "met" if b else "MISSED"
print(f"targets: cold < 5 ms: {ok(c1 < 5000)} (new connections {fmt(c1)}), {ok(c2 < 5000)} (kept-alive {fmt(c2)}); cached < 50 µs: {ok(ca < 50)} ({fmt(ca)})")
print(f"per-round keyway cold medians (new conn): {[round(r['median_us']) for r in rows[('keyway','cold_new_conn')]]} µs; google-auth: {[round(r['median_us']) for r in rows[('google-auth','cold_new_conn')]]} µs")
PY
