#!/usr/bin/env bash
# Benchmark (issue "keyway on a VM"): whole-process wall time and peak memory of
#   keyway exec --env S1=sm://… … -- true
# with 1, 20 and 100 Secret Manager references against the local cloud, on an
# emulated VM (metadata-server credentials), beside the official Python client
# (google-cloud-secret-manager, REST) doing the same job in the same run.
# Release build; runs in a loopback-only network namespace.
#
#   bench/exec.sh [--runs N]
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=30
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) RUNS=$2; shift 2 ;;
    --inside) INSIDE=1; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
if [ -z "${INSIDE:-}" ]; then
  command -v /usr/bin/time >/dev/null || { apt-get update -qq && apt-get install -y -qq time >/dev/null; }
  [ -x .venv/bin/python ] || python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check -r tests/python/requirements.txt
  cargo build --release --locked --quiet -p keyway
  exec bash scripts/netns.sh bash bench/exec.sh --inside --runs "$RUNS"
fi

KW="$PWD/target/release/keyway"
source bench/lib.sh
WORK=$(mktemp -d)
trap 'kill $CLOUD 2>/dev/null; wait $CLOUD 2>/dev/null; rm -rf "$WORK"' EXIT
python3 - "$WORK/world.toml" <<'PY'
import sys
with open(sys.argv[1], "w") as f:
    f.write('[[project]]\nid = "bench-vm-proj"\nnumber = 5555555555\n')
    f.write('[[instance]]\nproject = "bench-vm-proj"\nzone = "us-central1-a"\nname = "bench-vm"\nscopes = ["cloud-platform"]\n')
    f.write('[[binding]]\nresource = "projects/bench-vm-proj"\nrole = "roles/secretmanager.secretAccessor"\nmembers = ["serviceAccount:5555555555-compute@developer.gserviceaccount.com"]\n')
    for i in range(100):
        f.write(f'[[secret]]\nproject = "bench-vm-proj"\nname = "s{i:03d}"\nversions = [{{ data = "value-{i:03d}-0123456789abcdef0123456789abcdef" }}]\n')
PY
"$KW" -q cloud up --world "$WORK/world.toml" --data "$WORK/data" > /dev/null &
CLOUD=$!
for _ in $(seq 400); do [ -s "$WORK/data/endpoints.json" ] && break; sleep 0.05; done
eval "$("$KW" cloud env --data "$WORK/data" --instance bench-vm)"

cat > "$WORK/peer.py" <<'PY'
# The same job with the official client: fetch N secrets concurrently, then run `true`.
import os, subprocess, sys
from concurrent.futures import ThreadPoolExecutor
import google.auth
from google.cloud import secretmanager
n = int(sys.argv[1])
creds, project = google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])
client = secretmanager.SecretManagerServiceClient(transport="rest", credentials=creds,
    client_options={"api_endpoint": os.environ["CLOUDSDK_API_ENDPOINT_OVERRIDES_SECRETMANAGER"].rstrip("/")})
def get(i):
    return client.access_secret_version(name=f"projects/{project}/secrets/s{i:03d}/versions/latest").payload.data
env = dict(os.environ)
with ThreadPoolExecutor(16) as ex:
    for i, v in enumerate(ex.map(get, range(n))):
        env[f"S{i:03d}"] = v.decode()
sys.exit(subprocess.run(["true"], env=env).returncode)
PY


refs() { local n=$1 a=(); for i in $(seq 0 $((n-1))); do a+=(--env "$(printf 'S%03d=sm://bench-vm-proj/s%03d' "$i" "$i")"); done; echo "${a[@]}"; }
: > "$WORK/results.txt"
for n in 1 20 100; do
  # shellcheck disable=SC2046
  measure "keyway-$n" "$RUNS" "$KW" exec $(refs "$n") -- true >> "$WORK/results.txt"
done
measure "python-20" "$((RUNS < 10 ? RUNS : 10))" .venv/bin/python "$WORK/peer.py" 20 >> "$WORK/results.txt"

python3 - "$WORK/results.txt" "$RUNS" <<'PY'
import sys
rows = {l.split()[0]: l.split()[1:] for l in open(sys.argv[1]) if l.strip()}
print(f"\nkeyway exec -- true, Secret Manager references on an emulated VM (metadata credentials), {sys.argv[2]} runs each")
print(f"{'':16}{'median ms':>11}{'p90 ms':>9}{'peak RSS MiB (median/max)':>28}")
for k, (med, p90, rss_med, rss_max) in rows.items():
    print(f"{k:16}{float(med):>11.2f}{float(p90):>9.2f}{float(rss_med)/1024:>18.1f} / {float(rss_max)/1024:.1f}")
k, p = float(rows["keyway-20"][0]), float(rows["python-20"][0])
print(f"20 references: keyway {k:.2f} ms vs official Python client {p:.2f} ms: {p/k:.1f}x faster (target: keyway <= 15 ms median, < 15 MiB peak)")
PY
