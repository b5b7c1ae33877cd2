"""Seed 002 with the official google-auth and Secret Manager client, unmodified.

Inside the emulated Fargate task, `keyway cloud cred-config … --aws` writes the
`external_account` configuration (as `gcloud iam workload-identity-pools
create-cred-config` would, with `token_url` and the impersonation URL on the
local cloud). google-auth's aws1 source reads AWS credentials only from
AWS_* variables or the EC2 metadata service, never from the ECS container
endpoint: so, exactly as the post's author did by hand, the test fetches the
task role's credentials from the task's credentials endpoint and exports them
as AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/AWS_SESSION_TOKEN. google-auth then
signs GetCallerIdentity, exchanges it at the local STS, impersonates the
service account (or uses the federated token directly) and reads the secret.
Without that export it fails; under `keyway exec` the workload needs neither
the export nor a Google library.

Network safety: the configuration's metadata URLs (AWS's 169.254.169.254, as
gcloud writes them) are re-pointed at a closed loopback port before any
client sees the file, and every child resolves loopback names only.
"""

from __future__ import annotations

import json
import subprocess
import sys

import requests

from conftest import CHILD_NETWORK_GUARD, DEAD_METADATA, KEYWAY_BIN, REPO, task_env

WORLD = REPO / "examples" / "seed-002.toml"
PROVIDER = "projects/402718395026/locations/global/workloadIdentityPools/bq-pool/providers/aws-provider"
SA = "rds-to-bigquery@curucuru-logs.iam.gserviceaccount.com"
CONFIG = "projects/curucuru-logs/secrets/rds-to-bigquery-config/versions/latest"
CONFIG_VALUE = '{"dataset":"curucuru_logs","table":"rds_export","location":"asia-northeast1"}'
DIRECT = "projects/curucuru-logs/secrets/bigquery-dataset/versions/latest"
DIRECT_VALUE = '{"dataset":"curucuru_logs","writer":"federated-task-role"}'
CP = "https://www.googleapis.com/auth/cloud-platform"

WORKLOAD = CHILD_NETWORK_GUARD + r"""
import json, os, socket, sys
import google.auth, google.auth.transport.requests
from google.api_core import exceptions as gexc
from google.cloud import secretmanager
# As the post's Go program: GOOGLE_APPLICATION_CREDENTIALS names the configuration.
creds, _ = google.auth.default()
creds = creds.with_scopes(["https://www.googleapis.com/auth/cloud-platform"])
out = {"class": type(creds).__module__ + "." + type(creds).__name__,
       "email": getattr(creds, "service_account_email", None)}
try:
    creds.refresh(google.auth.transport.requests.Request())
except Exception as e:
    out["refresh_error"] = str(e)
    print(json.dumps(out))
    raise SystemExit(0)
client = secretmanager.SecretManagerServiceClient(
    transport="rest", credentials=creds,
    client_options={"api_endpoint": os.environ["CLOUDSDK_API_ENDPOINT_OVERRIDES_SECRETMANAGER"].rstrip("/")})
for name in sys.argv[1:]:
    try:
        out[name] = client.access_secret_version(name=name).payload.data.decode()
    except gexc.Forbidden:
        out[name] = "denied"
print(json.dumps(out))
"""


def cred_config(cloud, env: dict[str, str], name: str, *args: str) -> str:
    """`keyway cloud cred-config PROVIDER ARGS --output-file HOME/NAME`, with the
    metadata URLs re-pointed at a dead loopback port; the file's path."""
    path = cloud.home / name
    r = subprocess.run(
        [str(KEYWAY_BIN), "cloud", "cred-config", "--data", str(cloud.data), PROVIDER, *args, "--output-file", str(path)],
        capture_output=True, text=True, timeout=20, env=env,
    )
    assert r.returncode == 0, r.stderr
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    cfg = json.loads(path.read_text())
    assert cfg["type"] == "external_account" and "private_key" not in path.read_text()
    for k in ("region_url", "url", "imdsv2_session_token_url"):
        if k in cfg["credential_source"]:
            cfg["credential_source"][k] = cfg["credential_source"][k].replace("http://169.254.169.254", f"http://{DEAD_METADATA}")
    path.write_text(json.dumps(cfg))
    return str(path)


def fetched_by_hand(env: dict[str, str]) -> dict[str, str]:
    """The post's workaround: GET the container credentials endpoint, export AWS_*."""
    r = requests.get(
        env["AWS_CONTAINER_CREDENTIALS_FULL_URI"],
        headers={"Authorization": env["AWS_CONTAINER_AUTHORIZATION_TOKEN"]},
        timeout=10,
    )
    assert r.status_code == 200, r.text
    c = r.json()
    return {"AWS_ACCESS_KEY_ID": c["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": c["SecretAccessKey"], "AWS_SESSION_TOKEN": c["Token"]}


def run_workload(env: dict[str, str], *secrets: str) -> dict:
    r = subprocess.run([sys.executable, "-c", WORKLOAD, *secrets], capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_official_client_with_hand_exported_task_role_credentials_impersonates_and_reads(start_cloud):
    cloud = start_cloud(WORLD)
    env = task_env(cloud, "rds-to-bigquery")
    assert "AWS_ACCESS_KEY_ID" not in env and env["AWS_REGION"] == "ap-northeast-1"
    env["GOOGLE_APPLICATION_CREDENTIALS"] = cred_config(cloud, env, "clientLibraryConfig-aws-provider.json", "--aws", "--service-account", SA)

    # Without the export, google-auth does not look at the ECS endpoint: it goes
    # to the metadata URL of the configuration (here a dead loopback port).
    out = run_workload(env, CONFIG)
    assert "refresh_error" in out and CONFIG not in out, out
    assert DEAD_METADATA in out["refresh_error"] or "security-credentials" in out["refresh_error"], out

    out = run_workload({**env, **fetched_by_hand(env)}, CONFIG, DIRECT)
    assert out["class"] == "google.auth.aws.Credentials", out
    assert "refresh_error" not in out, out
    assert out[CONFIG] == CONFIG_VALUE
    # The service account has no role on the secret bound to the principalSet.
    assert out[DIRECT] == "denied"


def test_official_client_reads_directly_through_the_principal_set(start_cloud):
    cloud = start_cloud(WORLD)
    env = task_env(cloud, "rds-to-bigquery")
    env["GOOGLE_APPLICATION_CREDENTIALS"] = cred_config(cloud, env, "direct.json", "--aws")
    out = run_workload({**env, **fetched_by_hand(env)}, CONFIG, DIRECT)
    assert "refresh_error" not in out, out
    assert out[DIRECT] == DIRECT_VALUE
    assert out[CONFIG] == "denied"


def test_the_execution_role_is_refused_by_the_attribute_condition(start_cloud):
    cloud = start_cloud(WORLD)
    env = task_env(cloud, "rds-to-bigquery-exec-role")
    env["GOOGLE_APPLICATION_CREDENTIALS"] = cred_config(cloud, env, "cred.json", "--aws", "--service-account", SA)
    out = run_workload({**env, **fetched_by_hand(env)}, CONFIG)
    err = out.get("refresh_error", "")
    assert "unauthorized_client" in err and "attribute condition" in err, out


def test_under_keyway_exec_the_workload_needs_no_export_and_no_google_library(start_cloud):
    cloud = start_cloud(WORLD)
    env = task_env(cloud, "rds-to-bigquery")
    env["GOOGLE_APPLICATION_CREDENTIALS"] = cred_config(cloud, env, "cred.json", "--aws", "--service-account", SA)
    env["KEYWAY_LOG"] = "trace"
    script = "import json, os; print(json.dumps({'config': os.environ['CONFIG'], 'aws_keys': 'AWS_ACCESS_KEY_ID' in os.environ}))"
    r = subprocess.run(
        [str(KEYWAY_BIN), "exec", "--env", "CONFIG=sm://curucuru-logs/rds-to-bigquery-config", "--", sys.executable, "-c", script],
        capture_output=True, text=True, timeout=60, env=env,
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out == {"config": CONFIG_VALUE, "aws_keys": False}
    assert CONFIG_VALUE not in r.stderr and "aws1 via ECS container credentials endpoint" in r.stderr
