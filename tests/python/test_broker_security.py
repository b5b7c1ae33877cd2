"""What the broker refuses, over its real socket (`keyway serve`, served by
keyway-serve): each API without its header or token, with a wrong token,
with X-Forwarded-For, with a method the real API does not take; requests
beyond the header and body caps; and a flood of connections past the cap,
answered with refusals while a legitimate request is still served and the
process's memory stays bounded. Nothing secret reaches the trace-level log.
On seed 000's VM with an AWS role that trusts it (all three APIs)."""

from __future__ import annotations

import json
import resource
import socket
import subprocess
import time

import requests

from broker_support import Serve, secrets_in
from conftest import HERE, KEYWAY_BIN
from test_broker_aws import ROLE

WORLD = HERE / "worlds" / "seed-000-aws.toml"


def env_of(cloud) -> dict[str, str]:
    env = cloud.instance_env()
    env.update({
        "AWS_ENDPOINT_URL": cloud.endpoints["aws"], "AWS_REGION": "us-west-2", "AWS_DEFAULT_REGION": "us-west-2",
        "AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": "/dev/null",
        "KEYWAY_AWS_WEB_IDENTITY": "google", "AWS_ROLE_ARN": ROLE, "KEYWAY_LOG": "trace",
    })
    return env


def start(env, tmp_path, nofile: int | None = None) -> Serve:
    env_file, log = tmp_path / "broker.env", tmp_path / "serve.stderr"

    def limit():
        if nofile:
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

    with open(log, "wb") as err:
        proc = subprocess.Popen([str(KEYWAY_BIN), "serve", "--env-file", str(env_file), "--token-file", str(tmp_path / "token")],
                                stdout=subprocess.DEVNULL, stderr=err, env=env, preexec_fn=limit)
    return Serve(proc, env_file, log)


def raw(addr: tuple[str, int], data: bytes, timeout: float = 10) -> bytes:
    with socket.create_connection(addr, timeout=timeout) as s:
        s.sendall(data)
        out = b""
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            out += chunk
            if b"\r\n\r\n" in out and b"connection: close" not in out.lower():
                break
        return out


def status(resp: bytes) -> int:
    return int(resp.split(b" ", 2)[1]) if resp.startswith(b"HTTP/1.1 ") else 0


def test_refusals_caps_and_a_flood(start_cloud, tmp_path):
    cloud = start_cloud(WORLD)
    serve = start(env_of(cloud), tmp_path, nofile=256)
    try:
        host = serve.exports["GCE_METADATA_HOST"]
        base = f"http://{host}"
        addr = (host.split(":")[0], int(host.split(":")[1]))
        token = (tmp_path / "token").read_text().strip()
        md = f"{base}/computeMetadata/v1/instance/service-accounts/default/token"
        ecs = serve.exports["AWS_CONTAINER_CREDENTIALS_FULL_URI"]
        sm = f"{base}/secretsmanager/get?secretId=training/s3-dataset-token"

        ok = requests.get(md, headers={"Metadata-Flavor": "Google"})
        assert ok.status_code == 200 and ok.headers["Metadata-Flavor"] == "Google"
        access_token = ok.json()["access_token"]
        creds = requests.get(ecs, headers={"Authorization": token})
        assert creds.status_code == 200
        secret_key = creds.json()["SecretAccessKey"]
        assert requests.get(sm, headers={"X-Aws-Parameters-Secrets-Token": token}).status_code == 200

        # No header / token, wrong token.
        assert requests.get(md).status_code == 403
        assert requests.get(ecs).status_code == 401
        assert requests.get(ecs, headers={"Authorization": "0" * 64}).status_code == 401
        assert requests.get(sm).status_code == 403
        assert requests.get(sm, headers={"X-Aws-Parameters-Secrets-Token": token[:-1] + "x"}).status_code == 403
        # Forwarded.
        xff = {"X-Forwarded-For": "203.0.113.9"}
        assert requests.get(md, headers={"Metadata-Flavor": "Google", **xff}).status_code == 403
        assert requests.get(ecs, headers={"Authorization": token, **xff}).status_code == 400
        assert requests.get(sm, headers={"X-Aws-Parameters-Secrets-Token": token, **xff}).status_code == 400
        # Methods the real APIs do not take.
        for m in ("POST", "PUT", "DELETE", "PATCH"):
            assert requests.request(m, md, headers={"Metadata-Flavor": "Google"}).status_code == 405, m
            assert requests.request(m, ecs, headers={"Authorization": token}).status_code == 405, m
            assert requests.request(m, sm, headers={"X-Aws-Parameters-Secrets-Token": token}).status_code == 405, m

        # Beyond the caps: a 100 KiB header, a 2 MiB body.
        big = b"GET /computeMetadata/v1/ HTTP/1.1\r\nHost: x\r\nMetadata-Flavor: Google\r\nX-Pad: " + b"a" * 100_000 + b"\r\n\r\n"
        assert status(raw(addr, big)) == 431
        body = b"GET /ping HTTP/1.1\r\nHost: x\r\nContent-Length: 2097152\r\n\r\n" + b"b" * 65536
        assert status(raw(addr, body)) == 413

        # A flood: far more connections than the cap (lowered by RLIMIT_NOFILE = 256), each
        # with a request in progress (a head that never ends), so none is idle to make room.
        held, refused = [], 0
        for _ in range(600):
            try:
                s = socket.create_connection(addr, timeout=5)
                s.sendall(b"GET /computeMetadata/v1/ HTTP/1.1\r\nHost: x\r\n")
                held.append(s)
            except OSError:
                refused += 1
        time.sleep(0.5)
        # Refused: answered 503, or (when even refusals are at their limit) closed at once.
        answered_503 = closed = still_open = 0
        for s in held:
            s.setblocking(False)
            try:
                first = s.recv(64)
                if first.startswith(b"HTTP/1.1 503"):
                    answered_503 += 1
                elif first == b"":
                    closed += 1
            except BlockingIOError:
                still_open += 1
            except ConnectionResetError:
                closed += 1
        assert answered_503 + closed + refused >= 600 - 256, (answered_503, closed, refused, still_open)
        assert answered_503 > 0, "refusals are answered"
        assert serve.proc.poll() is None, "the broker died under the flood"
        rss_kib = int([l for l in open(f"/proc/{serve.proc.pid}/status") if l.startswith("VmHWM:")][0].split()[1])
        for s in held:
            s.close()
        # Once the flood is gone, a legitimate request is served.
        deadline = time.monotonic() + 10
        while True:
            r = requests.get(md, headers={"Metadata-Flavor": "Google"}, timeout=10)
            if r.status_code == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert r.status_code == 200, r.text
        assert serve.proc.poll() is None, "the broker died under the flood"
        assert rss_kib < 64 * 1024, f"peak resident memory {rss_kib} KiB under a 600-connection flood"
        print(f"flood: 600 connections, {still_open} held, {answered_503} answered 503, {closed} closed, "
              f"{refused} refused at connect, peak RSS {rss_kib} KiB")
    finally:
        log = serve.stop()
    assert serve.proc.returncode == 0, log
    leaked = secrets_in(log, token, secret_key, access_token, "dataset-token-7c1e55b0a9d2")
    assert leaked == [], f"secrets in the trace log: {leaked}"
    assert json.dumps(log)  # the log was read whole
