"""keyway's AWS Secrets Manager client against a third party: moto_server.

Secrets are created with boto3 (the official SDK), then read back through the
keyway binary with `AWS_ENDPOINT_URL` pointing at moto on loopback. Everything
AWS-facing (boto3 and keyway) is given an explicit endpoint, no shared config,
and no IMDS, so nothing can reach 169.254.169.254 or an AWS host.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from conftest import DEAD_METADATA, KEYWAY_BIN, base_child_env

MOTO_BIN = Path(os.environ.get("VIRTUAL_ENV") or Path(__file__).resolve().parents[2] / ".venv") / "bin" / "moto_server"
REGION = "us-east-1"

STRING_V1 = "moto-string-v1-3c1f0a9e"
STRING_V2 = "moto-string-v2-8b24d7c1"
STRING_V3 = "moto-string-v3-e55a0f62"
JSON_VALUE = {"username": "svc-moto", "password": "pw-7d1e9a44c0b2", "nested": {"token": "tok-91ab3f0e"}}
BINARY_VALUE = bytes(range(256)) + b"\x00\xff\n\r moto-binary-tail"
ALL_VALUES = [STRING_V1, STRING_V2, STRING_V3, JSON_VALUE["password"], JSON_VALUE["nested"]["token"]]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def aws_env(home: Path, endpoint: str) -> dict[str, str]:
    env = base_child_env(home)
    env.update(
        {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ENDPOINT_URL_SECRETSMANAGER": endpoint,
            "AWS_ENDPOINT_URL_STS": endpoint,
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
            "AWS_CONFIG_FILE": "/dev/null",
            # whoami also looks for Google credentials: a dead loopback port, never 169.254.169.254.
            "GCE_METADATA_HOST": DEAD_METADATA,
            "GCE_METADATA_IP": DEAD_METADATA,
            "KEYWAY_LOG": "trace",
        }
    )
    return env


class Moto:
    def __init__(self, tmp: Path):
        self.port = _free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.home = tmp / "home"
        self.home.mkdir(parents=True, exist_ok=True)
        self.log = tmp / "moto.log"
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [str(MOTO_BIN), "-H", "127.0.0.1", "-p", str(self.port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=base_child_env(self.home),
            )
        deadline = time.monotonic() + 20
        while True:
            if self.proc.poll() is not None:
                pytest.fail(f"moto_server exited {self.proc.returncode}:\n{self.log.read_text(errors='replace')}")
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    pytest.fail("moto_server did not start listening in 20s")
                time.sleep(0.05)
        self.env = aws_env(self.home, self.endpoint)

    def client(self, service: str = "secretsmanager"):
        import boto3

        # The env of this process is not used: everything explicit.
        session = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION)
        return session.client(service, endpoint_url=self.endpoint)

    def stop(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)


@pytest.fixture(scope="module")
def moto(tmp_path_factory):
    # boto3 in this process must not look anywhere but loopback either.
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
    os.environ["AWS_SHARED_CREDENTIALS_FILE"] = "/dev/null"
    os.environ["AWS_CONFIG_FILE"] = "/dev/null"
    m = Moto(tmp_path_factory.mktemp("moto"))
    try:
        sm = m.client()
        m.arns = {}
        m.arns["str"] = sm.create_secret(Name="keyway/moto-string", SecretString=STRING_V1)["ARN"]
        sm.put_secret_value(SecretId="keyway/moto-string", SecretString=STRING_V2)
        sm.put_secret_value(SecretId="keyway/moto-string", SecretString=STRING_V3)
        m.arns["json"] = sm.create_secret(Name="keyway/moto-json", SecretString=json.dumps(JSON_VALUE))["ARN"]
        m.arns["bin"] = sm.create_secret(Name="keyway/moto-binary", SecretBinary=BINARY_VALUE)["ARN"]
        # Sanity: moto moved the stages as AWS does.
        assert sm.get_secret_value(SecretId="keyway/moto-string")["SecretString"] == STRING_V3
        assert sm.get_secret_value(SecretId="keyway/moto-string", VersionStage="AWSPREVIOUS")["SecretString"] == STRING_V2
        yield m
    finally:
        m.stop()


def keyway(moto: Moto, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run([str(KEYWAY_BIN), *args], env=moto.env, capture_output=True, timeout=60, cwd=str(moto.home))
    stderr = r.stderr.decode(errors="replace")
    for v in ALL_VALUES:
        assert v not in stderr, f"secret value {v!r} leaked into keyway's stderr"
    assert BINARY_VALUE[-20:] not in r.stderr
    if check:
        assert r.returncode == 0, f"keyway {' '.join(args)} exited {r.returncode}:\n{stderr[-4000:]}"
    return r


def test_get_string_by_name_and_arn(moto):
    assert keyway(moto, "get", "aws-sm://keyway/moto-string").stdout == STRING_V3.encode()
    assert keyway(moto, "get", moto.arns["str"]).stdout == STRING_V3.encode()
    assert keyway(moto, "get", f"aws-sm://{moto.arns['str']}").stdout == STRING_V3.encode()


def test_get_binary_intact(moto):
    assert keyway(moto, "get", "aws-sm://keyway/moto-binary").stdout == BINARY_VALUE
    assert keyway(moto, "get", moto.arns["bin"]).stdout == BINARY_VALUE


def test_previous_stage(moto):
    assert keyway(moto, "get", "aws-sm://keyway/moto-string#AWSPREVIOUS").stdout == STRING_V2.encode()
    assert keyway(moto, "get", "aws-sm://keyway/moto-string#AWSCURRENT").stdout == STRING_V3.encode()
    # ECS valueFrom form: ARN:json-key:version-stage:version-id (empty json key = whole value).
    assert keyway(moto, "get", f"{moto.arns['str']}::AWSPREVIOUS:").stdout == STRING_V2.encode()


def test_json_field(moto):
    assert keyway(moto, "get", "aws-sm://keyway/moto-json?field=password").stdout == JSON_VALUE["password"].encode()
    assert keyway(moto, "get", "aws-sm://keyway/moto-json?field=nested.token").stdout == JSON_VALUE["nested"]["token"].encode()
    assert keyway(moto, "get", f"{moto.arns['json']}:username::").stdout == JSON_VALUE["username"].encode()


def test_missing_secret(moto):
    r = keyway(moto, "get", "aws-sm://keyway/does-not-exist", check=False)
    assert r.returncode != 0
    assert r.stdout == b""
    err = r.stderr.decode(errors="replace")
    assert "keyway/does-not-exist" in err, err[-3000:]
    assert "Secrets Manager can't find the specified secret." in err, err[-3000:]


def test_missing_secret_names_aws_error_code(moto):
    r = keyway(moto, "get", "aws-sm://keyway/does-not-exist", check=False)
    assert r.returncode != 0
    err = r.stderr.decode(errors="replace")
    assert "ResourceNotFoundException" in err, err[-3000:]
    assert "404 NOT_FOUND" not in err, "an AWS error must not be described in Google's terms"


def test_exec_passes_value(moto):
    r = keyway(moto, "exec", "--env", "X=aws-sm://keyway/moto-string", "--", "sh", "-c", 'printf %s "$X" | sha256sum')
    assert r.stdout.split()[0].decode() == hashlib.sha256(STRING_V3.encode()).hexdigest()
    r = keyway(
        moto,
        "exec",
        "--env",
        f"X={moto.arns['json']}:password::",
        "--env",
        "Y=aws-sm://keyway/moto-string#AWSPREVIOUS",
        "--",
        "sh",
        "-c",
        'printf %s "$X$Y" | sha256sum',
    )
    assert r.stdout.split()[0].decode() == hashlib.sha256((JSON_VALUE["password"] + STRING_V2).encode()).hexdigest()


def test_whoami_shows_moto_identity(moto):
    ident = moto.client("sts").get_caller_identity()
    r = keyway(moto, "whoami", "--output", "json")
    doc = json.loads(r.stdout)
    aws = doc["aws"]
    assert aws["arn"] == ident["Arn"], aws
    assert aws["account"] == ident["Account"], aws
    assert aws["user_id"] == ident["UserId"], aws
    assert aws["region"]["name"] == REGION
