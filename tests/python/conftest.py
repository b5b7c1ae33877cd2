"""Shared helpers for the Python suite that runs official Google client
libraries, unmodified, against `keyway cloud`.

Network safety: this file runs before any test module and before anything
imports google.auth. It

* refuses to run unless the process is in a network namespace whose only
  interface is loopback (run the suite under `unshare -n`, see README.md);
* points google-auth's metadata lookups (read at import time) at a closed
  loopback port, so nothing in the pytest process can reach
  169.254.169.254 / metadata.google.internal;
* hands every child process an environment built from scratch (never this
  process's), from the `export`/`unset` lines `keyway cloud env` prints.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
WORLDS = HERE / "worlds"
SEED000 = REPO / "examples" / "seed-000.toml"
KEYWAY_BIN = Path(os.environ.get("KEYWAY_BIN") or REPO / "target" / "debug" / "keyway")
STARTUP_TIMEOUT = 10.0
CHILD_TIMEOUT = 60

PROJECT = "kaggle-gpu-lab"
PROJECT_NUMBER = 482915736104
OWNER = "kyoto@example.com"
VM = "kaggle-gpu-vm"
ZONE = "asia-northeast1-a"
VM_SA = f"{PROJECT_NUMBER}-compute@developer.gserviceaccount.com"
SECRET = "wandb-api-key"
SECRET_VALUE = "local-wandb-key-0f3a9c2e71b84d55a6e0c9d13b7f2e48"
CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"
GCE_DEFAULT_SCOPES = [
    "https://www.googleapis.com/auth/devstorage.read_only",
    "https://www.googleapis.com/auth/logging.write",
    "https://www.googleapis.com/auth/monitoring.write",
    "https://www.googleapis.com/auth/servicecontrol",
    "https://www.googleapis.com/auth/service.management.readonly",
    "https://www.googleapis.com/auth/trace.append",
]


def _free_closed_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# A metadata address that answers nothing: anything in this process (or a child
# that is not told otherwise) that looks for GCE fails fast on loopback.
DEAD_METADATA = f"127.0.0.1:{_free_closed_port()}"
os.environ["GCE_METADATA_HOST"] = DEAD_METADATA
os.environ["GCE_METADATA_IP"] = DEAD_METADATA
os.environ["NO_GCE_CHECK"] = "True"
os.environ.pop("GOOGLE_APPLICATION_CREDENTIALS", None)
# No gcloud config of the machine's user: CLOUDSDK_CONFIG is set per principal.
os.environ["CLOUDSDK_CONFIG"] = tempfile.mkdtemp(prefix="keyway-pytest-nogcloud-")


_real_getaddrinfo = socket.getaddrinfo


def _loopback_only_getaddrinfo(host, *args, **kwargs):
    h = host.decode() if isinstance(host, bytes) else str(host)
    if h not in ("127.0.0.1", "localhost", "::1"):
        raise OSError(f"keyway test guard: blocked a connection to non-loopback host {h!r}")
    return _real_getaddrinfo(host, *args, **kwargs)


# Belt and braces (the namespace is the real fence): in-process clients resolve
# loopback names only, and say so clearly when they try anything else.
socket.getaddrinfo = _loopback_only_getaddrinfo


def _non_loopback_interfaces() -> list[str]:
    # Asked of the kernel for this process's network namespace (/sys/class/net
    # would describe the namespace sysfs was mounted in).
    return sorted(name for _, name in socket.if_nameindex() if name != "lo")


def pytest_configure(config):
    others = _non_loopback_interfaces()
    if others and os.environ.get("KEYWAY_PYTEST_ALLOW_NETWORK") != "1":
        pytest.exit(
            "refusing to run: this network namespace has interfaces other than loopback "
            f"({', '.join(others)}). Run inside `unshare -n sh -c 'ip link set lo up && ...'` "
            "(see tests/python/README.md).",
            returncode=3,
        )
    if not KEYWAY_BIN.is_file():
        pytest.exit(f"keyway binary not found at {KEYWAY_BIN}: run `cargo build -p keyway` or set KEYWAY_BIN", returncode=3)


# ---------------------------------------------------------------- env parsing


def parse_env_lines(text: str) -> tuple[dict[str, str], list[str]]:
    """Parses `keyway cloud env` output: `export K='V'` (with '\\'' escapes),
    `unset A B`, comments. Returns (exports, unset names)."""
    exports: dict[str, str] = {}
    unset: list[str] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        words = shlex.split(line, posix=True)
        if words[0] == "export":
            for w in words[1:]:
                k, sep, v = w.partition("=")
                assert sep, f"export without '=': {line!r}"
                exports[k] = v
        elif words[0] == "unset":
            unset.extend(words[1:])
        else:
            raise AssertionError(f"unexpected line from `keyway cloud env`: {line!r}")
    return exports, unset


# google-auth runs `gcloud config get project` when it loads the gcloud ADC
# file. Whether a machine has gcloud varies (and it is slow, ~1.5 s a call), so
# children find this stub first: it fails, as on a machine without gcloud, and
# google-auth takes the project from GOOGLE_CLOUD_PROJECT as it would anyway.
SHIM_DIR = Path(tempfile.mkdtemp(prefix="keyway-pytest-shims-"))
(SHIM_DIR / "gcloud").write_text("#!/bin/sh\necho 'gcloud is not used by the keyway python suite' >&2\nexit 1\n")
(SHIM_DIR / "gcloud").chmod(0o755)

# Prepended to every Python child the tests start: name resolution (and so every
# connection by host name) is refused for anything but loopback, so a forgotten
# override fails loudly inside the child too, even outside the network namespace.
CHILD_NETWORK_GUARD = """
import socket as _socket
_real_getaddrinfo = _socket.getaddrinfo
def _loopback_only(host, *a, **k):
    h = host.decode() if isinstance(host, bytes) else str(host)
    if h not in ("127.0.0.1", "localhost", "::1"):
        raise OSError("keyway test guard: blocked a connection to non-loopback host %r" % h)
    return _real_getaddrinfo(host, *a, **k)
_socket.getaddrinfo = _loopback_only
"""


def base_child_env(home: Path) -> dict[str, str]:
    """What every child starts from: nothing of this process's Google env."""
    env = {
        "PATH": f"{SHIM_DIR}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
    }
    if "SSL_CERT_FILE" in os.environ:
        env["SSL_CERT_FILE"] = os.environ["SSL_CERT_FILE"]
    return env


def task_env(cloud, task: str) -> dict[str, str]:
    """What a container of ECS `task` sees: `eval "$(keyway cloud env --task TASK)"`."""
    r = subprocess.run(
        [str(KEYWAY_BIN), "cloud", "env", "--data", str(cloud.data), "--task", task],
        capture_output=True, text=True, timeout=20, env=base_child_env(cloud.home),
    )
    assert r.returncode == 0, r.stderr
    # Values may span lines (the task definition's injected secrets): let a shell
    # evaluate the exports exactly as `eval "$(keyway cloud env ...)"` would.
    sh = subprocess.run(["sh", "-c", 'eval "$1" && env -0', "sh", r.stdout], capture_output=True, timeout=10, env=base_child_env(cloud.home))
    assert sh.returncode == 0, sh.stderr
    env = dict(item.split("=", 1) for item in sh.stdout.decode().split("\0") if "=" in item)
    # Off GCE: anything probing for a metadata server finds a dead loopback port.
    env.setdefault("GCE_METADATA_HOST", DEAD_METADATA)
    env.setdefault("GCE_METADATA_IP", DEAD_METADATA)
    return env


# --------------------------------------------------------------------- cloud


class ChildFailed(AssertionError):
    pass


class Cloud:
    """A running `keyway cloud up`."""

    def __init__(self, proc: subprocess.Popen, data: Path, endpoints: dict, ready_line: dict, log: Path):
        self.proc = proc
        self.data = data
        self.endpoints = endpoints
        self.ready_line = ready_line
        self.log = log
        self.google = endpoints["google"]
        self.home = data.parent / "home"
        self.home.mkdir(exist_ok=True)

    # -- env ---------------------------------------------------------------
    def env_lines(self, *, instance: str | None = None, user: str | None = None) -> str:
        args = [str(KEYWAY_BIN), "cloud", "env", "--data", str(self.data)]
        if instance:
            args += ["--instance", instance]
        if user:
            args += ["--user", user]
        r = subprocess.run(args, capture_output=True, text=True, timeout=10, env=base_child_env(self.home))
        assert r.returncode == 0, f"`keyway cloud env` failed ({r.returncode}): {r.stderr}"
        return r.stdout

    def env(self, *, instance: str | None = None, user: str | None = None) -> dict[str, str]:
        """A child environment exactly as `keyway cloud env` describes it."""
        exports, unset = parse_env_lines(self.env_lines(instance=instance, user=user))
        env = base_child_env(self.home)
        for k in unset:
            env.pop(k, None)
        env.update(exports)
        if "GCE_METADATA_HOST" not in env:
            # Safety net (a user env unsets the metadata vars): should anything in
            # the child look for GCE, it finds a dead loopback port, never
            # 169.254.169.254.
            env["GCE_METADATA_HOST"] = DEAD_METADATA
            env["GCE_METADATA_IP"] = DEAD_METADATA
        assert env["GCE_METADATA_HOST"].startswith("127.0.0.1:"), env["GCE_METADATA_HOST"]
        return env

    def instance_env(self, name: str = VM) -> dict[str, str]:
        return self.env(instance=name)

    def user_env(self, email: str = OWNER) -> dict[str, str]:
        return self.env(user=email)

    def adc_file(self, email: str = OWNER) -> Path:
        return Path(self.endpoints["users"][email]["cloudsdk_config"]) / "application_default_credentials.json"

    def metadata(self, name: str = VM) -> str:
        return self.endpoints["instances"][name]["metadata"]

    # -- children ----------------------------------------------------------
    def run(self, script: str, env: dict[str, str], timeout: float = CHILD_TIMEOUT) -> dict:
        """Runs `script` in a fresh interpreter with `env`; the script prints one
        JSON object as its last stdout line, which is returned."""
        prelude = textwrap.dedent(
            """
            import json, os, sys
            _h = os.environ.get("GCE_METADATA_HOST", "")
            assert _h.startswith("127.0.0.1:"), "child without a loopback metadata host: %r" % _h
            def emit(obj):
                print(json.dumps(obj))
            """
        ) + CHILD_NETWORK_GUARD
        r = subprocess.run(
            [sys.executable, "-c", prelude + textwrap.dedent(script)],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=str(self.home),
        )
        if r.returncode != 0:
            raise ChildFailed(f"child exited {r.returncode}\n--- stdout\n{r.stdout}\n--- stderr\n{r.stderr}")
        lines = [line for line in r.stdout.splitlines() if line.strip()]
        if not lines:
            raise ChildFailed(f"child printed nothing\n--- stderr\n{r.stderr}")
        try:
            return json.loads(lines[-1])
        except json.JSONDecodeError as e:
            raise ChildFailed(f"child's last line is not JSON ({e}): {lines[-1]!r}\n--- stderr\n{r.stderr}")

    # -- teardown ----------------------------------------------------------
    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        return self.proc.returncode


@contextlib.contextmanager
def running_cloud(world: Path, root: Path, *up_args: str):
    """Starts `keyway cloud up --world WORLD --data ROOT/data [UP_ARGS...]`, waits
    for endpoints.json (STARTUP_TIMEOUT), yields a Cloud, SIGTERMs it after."""
    root.mkdir(parents=True, exist_ok=True)
    data = root / "data"
    log = root / "cloud.stderr"
    with open(log, "wb") as err:
        proc = subprocess.Popen(
            [str(KEYWAY_BIN), "cloud", "up", "--world", str(world), "--data", str(data), *up_args],
            stdout=subprocess.PIPE,
            stderr=err,
            stdin=subprocess.DEVNULL,
            env=base_child_env(root),
        )
    cloud = None
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        endpoints_file = data / "endpoints.json"
        endpoints = None
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"`keyway cloud up` exited {proc.returncode} before it was ready:\n{log.read_text(errors='replace')}")
            if endpoints_file.exists():
                try:
                    endpoints = json.loads(endpoints_file.read_text())
                    if endpoints.get("pid") == proc.pid:
                        break
                except (json.JSONDecodeError, OSError):
                    pass
                endpoints = None
            time.sleep(0.05)
        if endpoints is None:
            pytest.fail(f"`keyway cloud up` wrote no endpoints.json in {STARTUP_TIMEOUT}s:\n{log.read_text(errors='replace')}")
        # The ready line on stdout is the same document.
        ready_fds, _, _ = select.select([proc.stdout], [], [], max(0.5, deadline - time.monotonic()))
        if not ready_fds:
            pytest.fail("`keyway cloud up` wrote endpoints.json but printed no ready line on stdout")
        ready = json.loads(proc.stdout.readline())
        cloud = Cloud(proc, data, endpoints, ready, log)
        yield cloud
    finally:
        if cloud is not None:
            cloud.stop()
        elif proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdout:
            proc.stdout.close()
    # Whatever the tests saw, the cloud must not have hit an internal error.
    if log.exists():
        text = log.read_text(errors="replace")
        assert "internal error" not in text.lower(), f"the local cloud logged an internal error:\n{text}"


@pytest.fixture(scope="module")
def seed000(tmp_path_factory):
    """Seed 000, one data dir per test module."""
    with running_cloud(SEED000, tmp_path_factory.mktemp("seed000")) as c:
        yield c


@pytest.fixture
def fresh_seed000(tmp_path):
    """Seed 000 in its own data dir, for a test that changes state others must not see."""
    with running_cloud(SEED000, tmp_path) as c:
        yield c


@pytest.fixture
def start_cloud(tmp_path):
    """start_cloud(world_path) -> Cloud, stopped at teardown."""
    stack = contextlib.ExitStack()
    n = [0]

    def start(world: Path) -> Cloud:
        n[0] += 1
        return stack.enter_context(running_cloud(world, tmp_path / f"cloud{n[0]}"))

    with stack:
        yield start


# ------------------------------------------------------------ shared snippets

# Child-script fragments (the child env comes from `keyway cloud env`).

# Credentials exactly as google.auth.default() finds them. google-auth ignores an
# authorized_user file's `token_uri` and would refresh at oauth2.googleapis.com
# (from_authorized_user_info: "always overrides"); `keyway cloud up` therefore
# writes a cached token and expiry into the user's ADC file, so the unmodified
# credentials are valid without any refresh. A refresh here would be a bug.
CHILD_CREDS = """
import google.auth, google.oauth2.credentials
creds, project = google.auth.default()
if isinstance(creds, google.oauth2.credentials.Credentials):
    assert creds.valid, "user ADC credentials need a refresh, which google-auth would send to oauth2.googleapis.com"
"""

CHILD_SM_CLIENT = CHILD_CREDS + """
from google.cloud import secretmanager
from google.api_core import exceptions as gexc
endpoint = os.environ["CLOUDSDK_API_ENDPOINT_OVERRIDES_SECRETMANAGER"].rstrip("/")
client = secretmanager.SecretManagerServiceClient(
    transport="rest", client_options={"api_endpoint": endpoint}, credentials=creds)

def describe(e):
    resp = getattr(e, "response", None)
    try:
        body = resp.json() if resp is not None else None
    except ValueError:
        body = None
    return {
        "type": type(e).__name__,
        "classes": [c.__name__ for c in type(e).__mro__],
        "status": ((body or {}).get("error") or {}).get("status"),
        "http_status": getattr(resp, "status_code", None),
        "body": body,
        "server_message": (body or {}).get("error", {}).get("message"),
        "code": int(e.code) if e.code is not None else None,
        "message": e.message,
        "reason": getattr(e, "reason", None),
        "domain": getattr(e, "domain", None),
        "metadata": getattr(e, "metadata", None),
    }
"""


def crc32c(data: bytes) -> int:
    """CRC32C (Castagnoli): google_crc32c when installed, else pure Python."""
    try:
        import google_crc32c  # type: ignore

        return int(google_crc32c.value(data))
    except ImportError:
        pass
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 & -(crc & 1))
    return crc ^ 0xFFFFFFFF


# ------------------------------------------------------- in-process clients
# (this process's metadata vars point at a dead port, set above, before any
# google import)


def user_credentials(cloud: Cloud, email: str = OWNER):
    """The user's credentials from the ADC file `keyway cloud env --user` points
    at, loaded by google-auth. They carry a valid cached token; they are also
    re-pointed (public with_token_uri) at the file's token_uri, so tests that
    call refresh() exercise the local cloud's refresh grant instead of sending
    the refresh token towards oauth2.googleapis.com, which google-auth would do."""
    import google.oauth2.credentials

    path = cloud.adc_file(email)
    creds = google.oauth2.credentials.Credentials.from_authorized_user_file(str(path))
    token_uri = json.loads(path.read_text())["token_uri"]
    assert token_uri == f"{cloud.google}/token", token_uri
    if not (creds.token_uri or "").startswith("http://127.0.0.1:"):
        creds = creds.with_token_uri(token_uri)
    return creds


def authorized_session(cloud: Cloud, email: str = OWNER):
    from google.auth.transport.requests import AuthorizedSession

    return AuthorizedSession(user_credentials(cloud, email))


def secret_manager_client(cloud: Cloud, creds):
    from google.cloud import secretmanager

    return secretmanager.SecretManagerServiceClient(
        transport="rest", client_options={"api_endpoint": cloud.google}, credentials=creds
    )


def error_body(exc) -> dict:
    """The Google error envelope behind an api_core exception."""
    return exc.response.json()["error"]


def compute_url(cloud: Cloud, name: str = VM, project: str = PROJECT, zone: str = ZONE) -> str:
    return f"{cloud.google}/compute/v1/projects/{project}/zones/{zone}/instances/{name}"


def set_vm_scopes(cloud: Cloud, scopes: list[str], *, start: bool = True, name: str = VM) -> dict:
    """As the owner: stop the VM, set its account's scopes, start it again."""
    s = authorized_session(cloud)
    url = compute_url(cloud, name)
    email = s.get(url).json()["serviceAccounts"][0]["email"]
    for path, body in (("/stop", None), ("/setServiceAccount", {"email": email, "scopes": scopes})) + (
        (("/start", None),) if start else ()
    ):
        r = s.post(url + path, json=body)
        assert r.status_code == 200, (path, r.status_code, r.text)
        assert r.json()["status"] == "DONE", r.json()
    return s.get(url).json()
