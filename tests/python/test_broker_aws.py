"""The broker's ECS credentials API on an emulated GCE VM (seed 000's VM, an
AWS role that trusts its Google identity: worlds/seed-000-aws.toml): boto3
and the Node AWS SDK v3, unmodified and given no AWS key, read an AWS secret
through the broker, whose AWS credentials come from AssumeRoleWithWebIdentity
with the VM's Google ID token (KEYWAY_AWS_WEB_IDENTITY=google in keyway's
environment only)."""

from __future__ import annotations

import sys

from broker_support import NODE_DIR, last_json, node, run, secrets_in, start_serve
from conftest import CHILD_NETWORK_GUARD, HERE, KEYWAY_BIN

WORLD = HERE / "worlds" / "seed-000-aws.toml"
ROLE = "arn:aws:iam::731904562018:role/gpu-trainer-from-google"
SECRET = "training/s3-dataset-token"
VALUE = "dataset-token-7c1e55b0a9d2"

WORKLOAD = CHILD_NETWORK_GUARD + r"""
import json, os, subprocess, sys
secret, node, node_dir = sys.argv[1:4]
out = {"forbidden_env": [k for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
       "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE", "KEYWAY_AWS_WEB_IDENTITY", "AWS_CONTAINER_AUTHORIZATION_TOKEN")
       if k in os.environ]}
out["token_file_mode"] = oct(os.stat(os.environ["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"]).st_mode & 0o777)
import boto3
session = boto3.Session()
sm = session.client("secretsmanager")
out["value"] = sm.get_secret_value(SecretId=secret)["SecretString"]
out["method"] = session.get_credentials().method
p = subprocess.run([node, os.path.join(node_dir, "aws_read.mjs"), secret], capture_output=True, text=True, timeout=60)
out["node"] = json.loads([l for l in p.stdout.splitlines() if l.startswith("{")][-1]) if p.stdout else {"error": p.stderr[-2000:]}
print(json.dumps(out))
"""


def vm_env(cloud) -> dict[str, str]:
    env = cloud.instance_env()
    env.update({
        "AWS_ENDPOINT_URL": cloud.endpoints["aws"],
        "AWS_REGION": "us-west-2",
        "AWS_DEFAULT_REGION": "us-west-2",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": "/dev/null",
        "KEYWAY_AWS_WEB_IDENTITY": "google",
        "AWS_ROLE_ARN": ROLE,
        "KEYWAY_LOG": "trace",
    })
    return env


def check(out: dict, token_file_mode: str) -> None:
    assert out["forbidden_env"] == [], out
    assert out["token_file_mode"] == token_file_mode, out
    assert out["value"] == VALUE, out
    assert out["method"] == "container-role", out
    n = out["node"]
    assert n.get("error") is None and n["forbidden_env"] == [], n
    assert n["value"] == VALUE, n
    assert n["access_key_prefix"] == "ASIA", n
    assert n["expires"], n


def test_exec_broker_boto3_and_node_read_an_aws_secret_with_the_vms_google_identity(start_cloud):
    cloud = start_cloud(WORLD)
    env = vm_env(cloud)
    r = run([str(KEYWAY_BIN), "exec", "--broker=ecs", "--", sys.executable, "-c", WORKLOAD,
             SECRET, node(), str(NODE_DIR)], env)
    assert r.returncode == 0, r.stderr[-4000:]
    check(last_json(r.stdout), "0o400")
    assert "web identity" in r.stderr and "the broker serves the ECS credentials API" in r.stderr, r.stderr[-3000:]
    assert secrets_in(r.stderr, VALUE) == [], "keyway logged a secret at trace level"


def test_serve_boto3_and_node_read_an_aws_secret_with_the_vms_google_identity(start_cloud, tmp_path):
    cloud = start_cloud(WORLD)
    env = vm_env(cloud)
    serve = start_serve(env, tmp_path, "--apis", "ecs", "--token-file", str(tmp_path / "ecs.token"))
    try:
        assert serve.exports["AWS_CONTAINER_CREDENTIALS_FULL_URI"].endswith("/aws/credentials")
        assert serve.exports["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"] == str(tmp_path / "ecs.token")
        assert "AWS_ROLE_ARN" in serve.unset and "KEYWAY_AWS_WEB_IDENTITY" in serve.unset
        assert "GCE_METADATA_HOST" not in serve.exports
        child = serve.child_env({k: v for k, v in env.items() if k != "KEYWAY_LOG"})
        r = run([sys.executable, "-c", WORKLOAD, SECRET, node(), str(NODE_DIR)], child)
        assert r.returncode == 0, r.stderr[-4000:]
        check(last_json(r.stdout), "0o440")
    finally:
        log = serve.stop()
    assert serve.proc.returncode == 0, log
    assert not (tmp_path / "ecs.token").exists(), "the token file keyway created is removed at exit"
    assert not (tmp_path / "broker.env").exists()
    assert secrets_in(log, VALUE) == [], "keyway serve logged a secret at trace level"
