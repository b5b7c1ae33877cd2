"""Seed 001 done right: inside the emulated Fargate task, `keyway exec` takes the
Google service-account key from AWS Secrets Manager (with the task role's
credentials from the ECS endpoint) and hands it to the workload as a private
0400 file on tmpfs. The workload is the UNMODIFIED official Python client
(google-auth + google-cloud-secret-manager over REST), which reads its Google
secret with that file. No shell, no `echo $KEY > credentials.json`, no key in the
environment, and the file is gone after the workload exits."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import CHILD_NETWORK_GUARD, KEYWAY_BIN, REPO
from conftest import task_env as container_env

WORLD = REPO / "examples" / "seed-001.toml"
KEY_ARN = "arn:aws:secretsmanager:ap-northeast-1:380214597362:secret:wevox/gcp-credentials"
GOOGLE_SECRET = "projects/wevox-analytics/secrets/bigquery-export-config/versions/latest"
GOOGLE_VALUE = b'{"dataset":"wevox_daily","table":"scores"}'

WORKLOAD = CHILD_NETWORK_GUARD + r"""
import hashlib, json, os, socket, stat, sys
import google.auth
from google.cloud import secretmanager
path = os.environ["GOOGLE_APPLICATION_CREDENTIALS"]
st = os.stat(path)
creds, project = google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])
client = secretmanager.SecretManagerServiceClient(
    transport="rest", credentials=creds,
    client_options={"api_endpoint": os.environ["CLOUDSDK_API_ENDPOINT_OVERRIDES_SECRETMANAGER"].rstrip("/")})
data = client.access_secret_version(name=sys.argv[1]).payload.data
print(json.dumps({
    "path": path, "mode": oct(stat.S_IMODE(st.st_mode)), "dir_mode": oct(stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode)),
    "creds": type(creds).__module__ + "." + type(creds).__name__,
    "email": getattr(creds, "service_account_email", None),
    "sha256": hashlib.sha256(data).hexdigest(),
    "key_in_env": any("PRIVATE KEY" in v for v in os.environ.values()),
}))
"""


def task_env(cloud, task: str) -> dict[str, str]:
    env = container_env(cloud, task)
    env["KEYWAY_LOG"] = "trace"
    return env


def test_official_google_client_reads_its_secret_with_a_key_keyway_delivered(start_cloud):
    cloud = start_cloud(WORLD)
    env = task_env(cloud, "wevox-batch")
    assert "AWS_CONTAINER_CREDENTIALS_FULL_URI" in env and "AWS_ACCESS_KEY_ID" not in env
    # The world's task definition still injects the key as KEY (the story's "before",
    # which ECS resolves with the execution role); done right, the task definition
    # drops that injection and keyway fetches the key itself with the task role.
    assert "PRIVATE KEY" in env.pop("KEY")
    r = subprocess.run(
        [str(KEYWAY_BIN), "exec", "--env", f"GOOGLE_APPLICATION_CREDENTIALS={KEY_ARN}?filename=key.json",
         "--", sys.executable, "-c", WORKLOAD, GOOGLE_SECRET],
        env=env, capture_output=True, text=True, timeout=60, cwd=str(cloud.home),
    )
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    import hashlib

    assert out["sha256"] == hashlib.sha256(GOOGLE_VALUE).hexdigest()
    assert out["creds"] == "google.oauth2.service_account.Credentials", out
    assert out["email"] == "wevox-batch@wevox-analytics.iam.gserviceaccount.com", out
    assert out["mode"] == "0o400" and out["dir_mode"] == "0o700", out
    assert Path(out["path"]).name == "key.json"
    assert not out["key_in_env"], "the key must reach the workload as a file, not as an environment value"
    assert not Path(out["path"]).exists(), "the key file outlived the workload"
    assert not Path(out["path"]).parent.exists()
    # keyway's own diagnostics, at trace level, never show the key or the Google secret.
    assert "PRIVATE KEY" not in r.stderr and "wevox_daily" not in r.stderr


def test_the_execution_role_is_not_the_task_role(start_cloud):
    """Seed 002's trap, seen from seed 001's world: a task with no task role has no
    credentials at runtime, whatever its execution role may read at start."""
    cloud = start_cloud(WORLD)
    env = task_env(cloud, "wevox-batch-no-task-role")
    assert "AWS_CONTAINER_CREDENTIALS_FULL_URI" not in env
    r = subprocess.run(
        [str(KEYWAY_BIN), "exec", "--env", f"GOOGLE_APPLICATION_CREDENTIALS={KEY_ARN}?filename=key.json", "--", "true"],
        env=env, capture_output=True, text=True, timeout=60, cwd=str(cloud.home),
    )
    assert r.returncode == 125, r.stderr
    assert "GOOGLE_APPLICATION_CREDENTIALS" in r.stderr
    assert "execution role" in r.stderr and "task role" in r.stderr, r.stderr
