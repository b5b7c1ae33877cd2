#!/usr/bin/env bash
# The main job on the embedded local cloud: seed 000 (a GCE VM reading its
# Weights & Biases key from Secret Manager), told step by step. Builds keyway,
# starts `keyway cloud` from examples/seed-000.toml, and runs every step inside
# a loopback-only network namespace. The VM side is keyway (whoami, exec); the
# owner's side is the real gcloud, configured by `keyway cloud env --user`.
#
# `scripts/demo.sh 002` tells seed 002 instead: a Fargate task reading Google
# data keylessly (ECS task role → Google STS → service-account impersonation),
# ending with Google's unmodified Python client reading through keyway's broker.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" != "--inside" ]; then
  case "${1:-000}" in 000|002) ;; *) echo "usage: scripts/demo.sh [000|002]" >&2; exit 2 ;; esac
  command -v curl >/dev/null || { echo "error: the demo needs curl" >&2; exit 1; }
  command -v python3 >/dev/null || { echo "error: the demo needs python3" >&2; exit 1; }
  if [ -x target/debug/keyway ]; then
    echo "==> building keyway (cargo build -p keyway; only what changed is rebuilt)" >&2
  else
    echo "==> building keyway for the first time (cargo build -p keyway): about 220 crates," >&2
    echo "    about 10 minutes on 2 cores; cargo shows its progress below. Later runs take seconds." >&2
  fi
  cargo build --locked -p keyway
  if [ "${1:-000}" = 002 ] && ! .venv/bin/python -c 'import google.cloud.secretmanager' 2>/dev/null; then
    # The last step runs Google's own Python client, unmodified (needs the package registry once).
    [ -x .venv/bin/python ] || python3 -m venv .venv
    .venv/bin/pip install --quiet --disable-pip-version-check -r tests/python/requirements.txt
  fi
  exec bash scripts/netns.sh bash scripts/demo.sh --inside "${1:-000}"
fi
SEED="${2:-000}"

KW="$PWD/target/debug/keyway"
DATA=$(mktemp -d)
"$KW" cloud up --world "examples/seed-$SEED.toml" --data "$DATA" > "$DATA/up.json" &
CLOUD=$!
trap 'kill $CLOUD 2>/dev/null; wait $CLOUD 2>/dev/null; rm -rf "$DATA"' EXIT
for _ in $(seq 100); do [ -s "$DATA/endpoints.json" ] && break; sleep 0.05; done
[ -s "$DATA/endpoints.json" ] || { echo "the local cloud did not start" >&2; exit 1; }

if [ -t 1 ] && [ -z "${NO_COLOR:-}" ]; then
  say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
else
  say() { printf '\n== %s\n' "$*"; }
fi

if [ "$SEED" = 002 ]; then
  PROVIDER=projects/402718395026/locations/global/workloadIdentityPools/bq-pool/providers/aws-provider
  SA=rds-to-bigquery@curucuru-logs.iam.gserviceaccount.com
  task() {  # run a keyway command as a container of ECS task $1 would, with the WIF config
    local t=$1; shift
    ( eval "$("$KW" cloud env --data "$DATA" --task "$t")"; export GOOGLE_APPLICATION_CREDENTIALS="$DATA/cred.json"; "$KW" "$@" )
  }
  say "The local cloud is up (every port on 127.0.0.1):"
  cat "$DATA/up.json"
  say "1. The credential configuration gcloud's create-cred-config writes (no key in it):"
  "$KW" cloud cred-config --data "$DATA" "$PROVIDER" --aws --service-account "$SA" --output-file "$DATA/cred.json"
  python3 -m json.tool "$DATA/cred.json"
  say "2. Inside the Fargate task (task role rds-to-bigquery-task): no AWS_* keys, only the ECS endpoint"
  "$KW" cloud env --data "$DATA" --task rds-to-bigquery | grep -E 'AWS_CONTAINER_CREDENTIALS_FULL_URI|AWS_EXECUTION_ENV'
  say "3. keyway whoami: the chain, ECS credentials → STS → impersonation"
  task rds-to-bigquery whoami
  say "4. keyway exec reads the Google secret for the job (shown by a hash)"
  task rds-to-bigquery exec --env CONFIG=sm://curucuru-logs/rds-to-bigquery-config -- \
    sh -c 'printf "workload started; CONFIG sha256: "; printf %s "$CONFIG" | sha256sum | cut -c1-16'
  say "5. The trap: the same job run with the execution role as its task role"
  task rds-to-bigquery-exec-role get sm://curucuru-logs/rds-to-bigquery-config || echo "(keyway exit $?)"
  say "   keyway doctor, in that task: every step, and why STS refused (task role vs execution role)"
  task rds-to-bigquery-exec-role doctor sm://curucuru-logs/rds-to-bigquery-config || echo "(doctor exit $?)"
  say "6. An unmodified Google client through keyway's broker: google-auth + google-cloud-secret-manager,"
  echo "   with no credential file and no exported variable (keyway exec --broker gives it GCE_METADATA_HOST)"
  task rds-to-bigquery exec --broker -- "$PWD/.venv/bin/python" -c '
import hashlib, os, google.auth
from google.cloud import secretmanager
creds, project = google.auth.default()
client = secretmanager.SecretManagerServiceClient(transport="rest", credentials=creds,
    client_options={"api_endpoint": os.environ["CLOUDSDK_API_ENDPOINT_OVERRIDES_SECRETMANAGER"].rstrip("/")})
v = client.access_secret_version(name="projects/curucuru-logs/secrets/rds-to-bigquery-config/versions/latest").payload.data
print("GOOGLE_APPLICATION_CREDENTIALS in the workload:", os.environ.get("GOOGLE_APPLICATION_CREDENTIALS"))
print("google.auth.default():", type(creds).__name__, "of", creds.service_account_email, "in project", project)
print("read projects/curucuru-logs/secrets/rds-to-bigquery-config, sha256:", hashlib.sha256(v).hexdigest()[:16])'
  say "Done: no Google key and no hand-exported AWS_* variables; the wrong role was named, with the fix;"
  echo "and Google's own client read the secret keyless through the broker."
  exit 0
fi

vm() {  # run a keyway command as a process on the VM would
  ( eval "$("$KW" cloud env --data "$DATA" --instance kaggle-gpu-vm)"; "$KW" "$@" )
}
# The workload: a child that needs WANDB_API_KEY, shown by a hash, never the value.
WORKLOAD=(sh -c 'printf "workload started; WANDB_API_KEY sha256: "; printf %s "$WANDB_API_KEY" | sha256sum | cut -c1-16')
run_workload() { vm exec --env WANDB_API_KEY=sm://kaggle-gpu-lab/wandb-api-key -- "${WORKLOAD[@]}" && echo "(exit 0)" || echo "(keyway exit $?)"; }
owner() {  # the project owner at their terminal: the real gcloud, logged in as kyoto@example.com
  ( eval "$("$KW" cloud env --data "$DATA" --user kyoto@example.com)"; "$@" )
}
command -v gcloud >/dev/null || { echo "error: the owner's side of the demo runs the Google Cloud CLI (gcloud), which is not installed" >&2; exit 1; }
ZONE=asia-northeast1-a
SA=482915736104-compute@developer.gserviceaccount.com

say "The local cloud is up (every port on 127.0.0.1):"
cat "$DATA/up.json"
say "On the VM, what 'keyway cloud env --instance kaggle-gpu-vm' sets:"
"$KW" cloud env --data "$DATA" --instance kaggle-gpu-vm | grep -E 'GCE_METADATA_HOST|SECRETMANAGER|PROJECT='

say "1. On the VM: who am I? (keyway whoami)"
vm whoami
say "   keyway exec --env WANDB_API_KEY=sm://kaggle-gpu-lab/wandb-api-key -- <workload>"
run_workload

say "   keyway doctor on the VM: which step fails, why, and the commands that fix it"
vm doctor sm://kaggle-gpu-lab/wandb-api-key || echo "(doctor exit $?)"

say "2. The owner widens the scopes with gcloud: stop the VM, set cloud-platform, start it"
echo "\$ gcloud compute instances set-service-account kaggle-gpu-vm --zone=$ZONE --service-account=$SA --scopes=cloud-platform   (while it runs)"
owner gcloud compute instances set-service-account kaggle-gpu-vm --zone=$ZONE --service-account=$SA --scopes=cloud-platform 2>&1 | sed 's/^/  /' || true
for cmd in "stop kaggle-gpu-vm --zone=$ZONE" \
           "set-service-account kaggle-gpu-vm --zone=$ZONE --service-account=$SA --scopes=cloud-platform" \
           "start kaggle-gpu-vm --zone=$ZONE"; do
  echo "\$ gcloud compute instances $cmd"
  # shellcheck disable=SC2086 # the words of the command line, as typed
  owner gcloud compute instances $cmd 2>&1 | sed 's/^/  /'
done

say "3. The VM tries again: the scope is right now, but the service account has no role"
run_workload

say "   keyway doctor, with the owner's gcloud identity on the VM too (gcloud auth login there):"
echo "   the owner holds the role; the VM's service account does not (why Colab, running as the owner, just worked)"
(
  eval "$("$KW" cloud env --data "$DATA" --user kyoto@example.com)"
  account=$CLOUDSDK_CORE_ACCOUNT token_file=$CLOUDSDK_AUTH_ACCESS_TOKEN_FILE
  eval "$("$KW" cloud env --data "$DATA" --instance kaggle-gpu-vm)"
  CLOUDSDK_CORE_ACCOUNT=$account CLOUDSDK_AUTH_ACCESS_TOKEN_FILE=$token_file \
    "$KW" doctor sm://kaggle-gpu-lab/wandb-api-key || echo "(doctor exit $?)"
)

say "4. The owner grants roles/secretmanager.secretAccessor to the VM's service account (on the secret)"
echo "\$ gcloud secrets add-iam-policy-binding wandb-api-key --member=serviceAccount:$SA --role=roles/secretmanager.secretAccessor"
owner gcloud secrets add-iam-policy-binding wandb-api-key --member="serviceAccount:$SA" --role=roles/secretmanager.secretAccessor 2>&1 | sed 's/^/  /'

say "5. The VM runs the workload again: it starts, with the key in its environment"
run_workload
vm doctor sm://kaggle-gpu-lab/wandb-api-key | tail -1
say "6. The same secret as a private file (0400, on tmpfs, gone when the workload exits)"
vm exec --env WANDB_KEY_FILE='sm://kaggle-gpu-lab/wandb-api-key?filename=wandb.key' -- sh -c 'ls -l "$WANDB_KEY_FILE"; echo "$WANDB_KEY_FILE" > '"$DATA"'/path'
[ -e "$(cat "$DATA/path")" ] && echo "file still there (bug)" || echo "after exit: $(cat "$DATA/path") no longer exists"
say "7. The owner, with gcloud user credentials (the 'it just worked in Colab' case): keyway whoami"
owner "$KW" whoami > "$DATA/whoami.txt"; head -3 "$DATA/whoami.txt"
say "Done: the denial moved from scopes (403 ACCESS_TOKEN_SCOPE_INSUFFICIENT) to IAM (403 PERMISSION_DENIED) to success, and keyway named the fix each time."
