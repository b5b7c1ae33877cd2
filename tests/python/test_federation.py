"""Workload Identity Federation with the official google-auth, unmodified:
an `external_account` configuration (as `gcloud iam workload-identity-pools
create-cred-config` writes it, with `token_url` and the impersonation URL on
the local cloud) and AWS keys of a world IAM user or role session in the
environment. google-auth signs a GetCallerIdentity request itself (with the
target-resource header unsigned), exchanges it at the local STS, impersonates
the service account, and the Secret Manager client reads a secret; a role
session's federated token reads a secret bound to its principalSet directly;
and an `identity_pool` file source exchanges a VM's ID token.

Nothing reaches AWS or Google: the AWS STS URL in the subject token is only
signed, never called, and the metadata URLs of the configuration point at a
closed loopback port.
"""

from __future__ import annotations

import configparser
import json
from pathlib import Path

import boto3
import pytest
import requests

from conftest import DEAD_METADATA, base_child_env

HERE = Path(__file__).resolve().parent
WORLD = HERE / "worlds" / "federation.toml"
PROJECT = "fed-lab-proj"
NUMBER = 310000000042
SA = f"wif-runner@{PROJECT}.iam.gserviceaccount.com"
ACCOUNT = "123456789012"
CP = "https://www.googleapis.com/auth/cloud-platform"
DB_PASS = "federated-db-pass-5e1b"
DIRECT = "direct-to-the-pool-77aa"


def audience(pool: str, provider: str) -> str:
    return f"//iam.googleapis.com/projects/{NUMBER}/locations/global/workloadIdentityPools/{pool}/providers/{provider}"


@pytest.fixture(scope="module")
def cloud(tmp_path_factory):
    from conftest import running_cloud

    with running_cloud(WORLD, tmp_path_factory.mktemp("federation")) as c:
        yield c


def user_keys(cloud) -> dict[str, str]:
    """The IAM user's access key, from the shared credentials file the cloud wrote."""
    path = cloud.endpoints["aws_users"][f"{ACCOUNT}/builder"]["credentials_file"]
    cp = configparser.ConfigParser()
    cp.read(path)
    return {"AWS_ACCESS_KEY_ID": cp["default"]["aws_access_key_id"], "AWS_SECRET_ACCESS_KEY": cp["default"]["aws_secret_access_key"]}


def role_session(cloud) -> dict[str, str]:
    """Temporary credentials of the ci-runner role, issued by the cloud's AWS STS (boto3)."""
    keys = user_keys(cloud)
    sts = boto3.client(
        "sts",
        region_name="us-east-1",
        endpoint_url=cloud.endpoints["aws"],
        aws_access_key_id=keys["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=keys["AWS_SECRET_ACCESS_KEY"],
    )
    c = sts.assume_role(RoleArn=f"arn:aws:iam::{ACCOUNT}:role/ci-runner", RoleSessionName="build-42")["Credentials"]
    return {"AWS_ACCESS_KEY_ID": c["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": c["SecretAccessKey"], "AWS_SESSION_TOKEN": c["SessionToken"]}


def aws_config(cloud, *, impersonate: bool) -> dict:
    dead = f"http://{DEAD_METADATA}"
    cfg = {
        "universe_domain": "googleapis.com",
        "type": "external_account",
        "audience": audience("aws-pool", "aws-main"),
        "subject_token_type": "urn:ietf:params:aws:token-type:aws4_request",
        "token_url": f"{cloud.google}/v1/token",
        "credential_source": {
            "environment_id": "aws1",
            "region_url": f"{dead}/latest/meta-data/placement/availability-zone",
            "url": f"{dead}/latest/meta-data/iam/security-credentials",
            "regional_cred_verification_url": "https://sts.{region}.amazonaws.com?Action=GetCallerIdentity&Version=2011-06-15",
        },
    }
    if impersonate:
        cfg["service_account_impersonation_url"] = f"{cloud.google}/v1/projects/-/serviceAccounts/{SA}:generateAccessToken"
    return cfg


def child_env(cloud, cfg: dict, name: str, extra: dict[str, str]) -> dict[str, str]:
    path = cloud.home / f"{name}.json"
    path.write_text(json.dumps(cfg))
    env = base_child_env(cloud.home)
    env.update(
        {
            "GCE_METADATA_HOST": DEAD_METADATA,
            "GCE_METADATA_IP": DEAD_METADATA,
            "GOOGLE_CLOUD_PROJECT": PROJECT,
            "EXTERNAL_ACCOUNT_FILE": str(path),
            "SM_ENDPOINT": cloud.google,
            "AWS_EC2_METADATA_DISABLED": "true",
        }
    )
    env.update(extra)
    return env


# Loads the configuration with the class google.auth.default() would pick for
# it, refreshes (STS exchange, then impersonation when configured), and reads
# secrets with the Secret Manager REST client.
CHILD = """
import google.auth, google.auth.aws, google.auth.identity_pool, google.auth.transport.requests
from google.api_core import exceptions as gexc
from google.cloud import secretmanager
info = json.load(open(os.environ["EXTERNAL_ACCOUNT_FILE"]))
cls = google.auth.aws.Credentials if "environment_id" in info["credential_source"] else google.auth.identity_pool.Credentials
creds = cls.from_info(info, scopes=["https://www.googleapis.com/auth/cloud-platform"])
out = {"class": type(creds).__module__ + "." + type(creds).__name__}
try:
    creds.refresh(google.auth.transport.requests.Request())
except Exception as e:
    emit({**out, "refresh_error": str(e)})
    raise SystemExit(0)
out["token_prefix"] = creds.token[:5]
client = secretmanager.SecretManagerServiceClient(
    transport="rest", client_options={"api_endpoint": os.environ["SM_ENDPOINT"]}, credentials=creds)
for name in ("db-pass", "direct-secret"):
    try:
        v = client.access_secret_version(name=f"projects/fed-lab-proj/secrets/{name}/versions/latest")
        out[name] = v.payload.data.decode()
    except gexc.Forbidden:
        out[name] = "denied"
emit(out)
"""


def test_aws_user_keys_impersonate_and_read_a_secret(cloud):
    env = child_env(cloud, aws_config(cloud, impersonate=True), "aws-imp", {**user_keys(cloud), "AWS_REGION": "us-east-2"})
    out = cloud.run(CHILD, env)
    assert out["class"] == "google.auth.aws.Credentials", out
    assert "refresh_error" not in out, out
    assert out["token_prefix"] == "ya29."
    assert out["db-pass"] == DB_PASS
    # The service account has no role on direct-secret.
    assert out["direct-secret"] == "denied"


def test_aws_role_session_reads_directly_through_its_principal_set(cloud):
    env = child_env(cloud, aws_config(cloud, impersonate=False), "aws-direct", {**role_session(cloud), "AWS_REGION": "eu-west-1"})
    out = cloud.run(CHILD, env)
    assert "refresh_error" not in out, out
    # attribute.aws_role (Google's default AWS mapping) is bound on direct-secret; the session has nothing on db-pass.
    assert out["direct-secret"] == DIRECT
    assert out["db-pass"] == "denied"


def test_a_session_may_not_impersonate_without_workload_identity_user(cloud):
    env = child_env(cloud, aws_config(cloud, impersonate=True), "aws-noimp", {**role_session(cloud), "AWS_REGION": "us-east-2"})
    out = cloud.run(CHILD, env)
    assert "iam.serviceAccounts.getAccessToken" in out.get("refresh_error", ""), out


def test_a_wrong_secret_key_is_refused_as_google_words_it(cloud):
    keys = user_keys(cloud)
    keys["AWS_SECRET_ACCESS_KEY"] = keys["AWS_SECRET_ACCESS_KEY"][:-4] + "AAAA"
    env = child_env(cloud, aws_config(cloud, impersonate=True), "aws-bad", {**keys, "AWS_REGION": "us-east-2"})
    out = cloud.run(CHILD, env)
    err = out.get("refresh_error", "")
    assert "invalid_grant" in err and "SignatureDoesNotMatch" in err, out
    assert keys["AWS_SECRET_ACCESS_KEY"] not in err


def test_identity_pool_file_source_with_a_vm_id_token(cloud):
    aud = "https:" + audience("oidc-pool", "local-oidc")
    md = cloud.endpoints["instances"]["oidc-vm"]["metadata"]
    r = requests.get(
        f"http://{md}/computeMetadata/v1/instance/service-accounts/default/identity",
        params={"audience": aud, "format": "full"},
        headers={"Metadata-Flavor": "Google"},
        timeout=10,
    )
    assert r.status_code == 200, r.text
    token_file = cloud.home / "oidc-token.txt"
    token_file.write_text(r.text)
    cfg = {
        "universe_domain": "googleapis.com",
        "type": "external_account",
        "audience": audience("oidc-pool", "local-oidc"),
        "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
        "token_url": f"{cloud.google}/v1/token",
        "credential_source": {"file": str(token_file)},
        "service_account_impersonation_url": f"{cloud.google}/v1/projects/-/serviceAccounts/{SA}:generateAccessToken",
    }
    out = cloud.run(CHILD, child_env(cloud, cfg, "oidc", {}))
    assert out["class"] == "google.auth.identity_pool.Credentials", out
    assert "refresh_error" not in out, out
    assert out["db-pass"] == DB_PASS

    # A token for another audience is refused by STS.
    r = requests.get(
        f"http://{md}/computeMetadata/v1/instance/service-accounts/default/identity",
        params={"audience": "https://elsewhere.example.com"},
        headers={"Metadata-Flavor": "Google"},
        timeout=10,
    )
    token_file.write_text(r.text)
    out = cloud.run(CHILD, child_env(cloud, cfg, "oidc-bad", {}))
    assert "does not match the expected audience" in out.get("refresh_error", ""), out
