"""The broker's secrets API against what the AWS Secrets Manager Agent answers
(its README's curl and Python clients, unmodified but for the URL): the same
requests get the same answers, errors included; the cache honours its TTL and
`refreshNow`; and `/keyway/get` answers the same shape for keyway references.
Backed by seed 001's IAM user (a developer's ~/.aws/credentials) on the local
cloud, as the agent would be."""

from __future__ import annotations

import json
import subprocess
import time

import requests

from broker_support import secrets_in, start_serve
from conftest import KEYWAY_BIN, REPO, base_child_env, parse_env_lines

WORLD = REPO / "examples" / "seed-001.toml"
SECRET = "wevox/gcp-credentials"


def user_env(cloud) -> dict[str, str]:
    r = subprocess.run([str(KEYWAY_BIN), "cloud", "env", "--data", str(cloud.data), "--aws-user", "ogura"],
                       capture_output=True, text=True, timeout=20, env=base_child_env(cloud.home))
    assert r.returncode == 0, r.stderr
    exports, unset = parse_env_lines(r.stdout)
    env = base_child_env(cloud.home)
    for k in unset:
        env.pop(k, None)
    env.update(exports)
    env["KEYWAY_LOG"] = "trace"
    return env


def admin(env: dict[str, str]):
    import boto3

    creds = {}
    for line in open(env["AWS_SHARED_CREDENTIALS_FILE"]):
        if "=" in line:
            k, v = (x.strip() for x in line.split("=", 1))
            creds[k] = v
    return boto3.client("secretsmanager", region_name=env["AWS_REGION"], endpoint_url=env["AWS_ENDPOINT_URL"],
                        aws_access_key_id=creds["aws_access_key_id"], aws_secret_access_key=creds["aws_secret_access_key"])


def agent_python_example(url: str, token_file: str, secret_id: str) -> str:
    """The agent README's Python client, verbatim but for the URL and token path."""
    url = f"{url}/secretsmanager/get?secretId={secret_id}"
    with open(token_file) as fp:
        token = fp.read()
    headers = {"X-Aws-Parameters-Secrets-Token": token.strip()}
    response = requests.get(url, headers=headers)
    if response.status_code == 200:
        return response.text
    raise Exception(f"Status code {response.status_code} - {response.text}")


def curl(*args: str) -> tuple[int, str]:
    r = subprocess.run(["curl", "-s", "-o", "/dev/stdout", "-w", "\n%{http_code}", *args],
                       capture_output=True, text=True, timeout=20)
    body, _, code = r.stdout.rpartition("\n")
    return int(code), body


def test_agent_requests_get_the_agents_answers(start_cloud, tmp_path):
    cloud = start_cloud(WORLD)
    env = user_env(cloud)
    sm = admin(env)
    sm.create_secret(Name="agent/probe", SecretString="v1-value")
    token_file = tmp_path / "awssmatoken"
    serve = start_serve(env, tmp_path, "--apis", "secrets", "--token-file", str(token_file), "--secrets-ttl", "3")
    try:
        url = serve.exports["KEYWAY_SECRETS_URL"]
        assert serve.exports["KEYWAY_SECRETS_TOKEN_FILE"] == str(token_file)
        token = token_file.read_text().strip()
        h = ["-H", f"X-Aws-Parameters-Secrets-Token: {token}"]

        # curl, as in the agent's README.
        code, body = curl(*h, f"{url}/secretsmanager/get?secretId={SECRET}")
        assert code == 200, body
        doc = json.loads(body)
        assert list(doc) == ["ARN", "Name", "VersionId", "SecretString", "VersionStages", "CreatedDate"], doc
        assert doc["Name"] == SECRET and doc["ARN"].startswith("arn:aws:secretsmanager:ap-northeast-1:380214597362:secret:wevox/gcp-credentials-")
        assert doc["VersionStages"] == ["AWSCURRENT"]
        assert isinstance(doc["CreatedDate"], str) and float(doc["CreatedDate"]) > 1e9
        assert json.loads(doc["SecretString"])["type"] == "service_account"
        # The agent README's Python client gets the same document.
        assert json.loads(agent_python_example(url, str(token_file), SECRET)) == doc
        # The path form, and X-Vault-Token.
        code, body = curl("-H", f"X-Vault-Token: {token}", f"{url}/v1/{SECRET}")
        assert code == 200 and json.loads(body) == doc

        # The agent's refusals, word for word.
        assert curl(f"{url}/ping") == (200, "healthy")
        assert curl(f"{url}/secretsmanager/get?secretId={SECRET}") == (403, "Bad Token")
        assert curl("-H", "X-Aws-Parameters-Secrets-Token: wrong-token-0123456789", f"{url}/secretsmanager/get?secretId={SECRET}") == (403, "Bad Token")
        assert curl(*h, "-H", "X-Forwarded-For: 10.9.8.7", f"{url}/secretsmanager/get?secretId={SECRET}") == (400, "Forwarded")
        assert curl(*h, "-X", "POST", f"{url}/secretsmanager/get?secretId={SECRET}") == (405, "Not allowed")
        assert curl(*h, f"{url}/secretsmanager/get") == (400, "missing parameter secretId")
        assert curl(*h, f"{url}/secretsmanager/get?secretId=x&foo=1") == (400, "unknown parameter: foo")
        assert curl(*h, f"{url}/secretsmanager/get?secretId=x&refreshNow=maybe") == (400, "invalid refreshNow value")
        assert curl(*h, f"{url}/elsewhere") == (404, "Not found")
        code, body = curl(*h, f"{url}/secretsmanager/get?secretId=no/such/secret")
        assert code == 400 and body == '{"__type":"ResourceNotFoundException", "message":"Secrets Manager can\'t find the specified secret."}', body
        code, body = curl(*h, f"{url}/secretsmanager/get?secretId={SECRET}&versionStage=AWSPREVIOUS")
        assert code == 400 and json.loads(body)["__type"] == "ResourceNotFoundException", body

        # TTL: a new version is not seen until the TTL passes, or at once with refreshNow.
        get = lambda extra="": json.loads(curl(*h, f"{url}/secretsmanager/get?secretId=agent/probe{extra}")[1])
        assert get()["SecretString"] == "v1-value"
        sm.put_secret_value(SecretId="agent/probe", SecretString="v2-value")
        assert get()["SecretString"] == "v1-value", "served from the cache within the TTL"
        assert get("&refreshNow=true")["SecretString"] == "v2-value"
        sm.put_secret_value(SecretId="agent/probe", SecretString="v3-value")
        time.sleep(3.2)
        assert get()["SecretString"] == "v3-value", "fetched again after the TTL"

        # Any keyway reference, the same shape.
        code, body = curl(*h, f"{url}/keyway/get?secretId=aws-sm://{SECRET}?field=project_id")
        assert code == 200, body
        k = json.loads(body)
        assert k["SecretString"] == "wevox-analytics" and k["Name"] == f"aws-sm://{SECRET}?field=project_id", k
        code, body = curl(*h, f"{url}/keyway/get?secretId=nonsense://x")
        assert code == 400 and json.loads(body)["__type"] == "InvalidParameterException", body
    finally:
        log = serve.stop()
    assert serve.proc.returncode == 0, log
    assert not token_file.exists(), "the token file keyway created is removed at exit"
    assert secrets_in(log, "v1-value", "v2-value", "v3-value", "PRIVATE KEY", token) == [], "secrets in the trace log"
