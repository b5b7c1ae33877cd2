"""The CLI contract the rest of the suite stands on: the ready line and
endpoints.json, the `keyway cloud env` exports, SIGTERM, and a store that
survives a restart."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import requests

from conftest import (
    OWNER,
    PROJECT,
    SECRET,
    SEED000,
    VM,
    ZONE,
    authorized_session,
    parse_env_lines,
    running_cloud,
)

SERVICES = ["SECRETMANAGER", "CLOUDRESOURCEMANAGER", "IAM", "IAMCREDENTIALS", "STS", "OAUTH2"]


def test_ready_line_matches_endpoints_file(seed000):
    e = seed000.endpoints
    assert seed000.ready_line == e
    assert e["pid"] == seed000.proc.pid
    assert e["google"].startswith("http://127.0.0.1:")
    vm = e["instances"][VM]
    assert vm["project"] == PROJECT and vm["zone"] == ZONE
    assert vm["metadata"].startswith("127.0.0.1:") and vm["metadata"] != e["google"][len("http://") :]
    assert e["users"][OWNER]["project"] == PROJECT
    assert (seed000.data / "endpoints.json").exists()


def test_instance_env(seed000):
    exports, unset = parse_env_lines(seed000.env_lines(instance=VM))
    md = seed000.metadata(VM)
    base = seed000.google + "/"
    assert exports["GCE_METADATA_HOST"] == md
    assert exports["GCE_METADATA_IP"] == md
    assert exports["GOOGLE_CLOUD_PROJECT"] == PROJECT
    assert exports["CLOUDSDK_CORE_PROJECT"] == PROJECT
    for s in SERVICES:
        assert exports[f"CLOUDSDK_API_ENDPOINT_OVERRIDES_{s}"] == base, s
    assert exports["CLOUDSDK_API_ENDPOINT_OVERRIDES_COMPUTE"] == base + "compute/v1/"
    assert "GOOGLE_APPLICATION_CREDENTIALS" in unset
    assert "NO_GCE_CHECK" not in exports


def test_user_env(seed000):
    exports, unset = parse_env_lines(seed000.env_lines(user=OWNER))
    assert "GCE_METADATA_HOST" not in exports and "GCE_METADATA_HOST" in unset and "GCE_METADATA_IP" in unset
    assert exports["NO_GCE_CHECK"] == "True"
    assert exports["GOOGLE_CLOUD_PROJECT"] == PROJECT
    adc = json.loads((Path(exports["CLOUDSDK_CONFIG"]) / "application_default_credentials.json").read_text())
    assert adc["type"] == "authorized_user"
    assert adc["token_uri"] == seed000.google + "/token"
    assert adc["refresh_token"] and adc["client_id"] and adc["client_secret"]
    for s in SERVICES:
        assert exports[f"CLOUDSDK_API_ENDPOINT_OVERRIDES_{s}"] == seed000.google + "/", s


def test_env_for_unknown_names_fails(seed000):
    import subprocess

    from conftest import KEYWAY_BIN, base_child_env

    for flag, name in (("--instance", "no-such-vm"), ("--user", "nobody@example.com")):
        r = subprocess.run(
            [str(KEYWAY_BIN), "cloud", "env", "--data", str(seed000.data), flag, name],
            capture_output=True,
            text=True,
            timeout=10,
            env=base_child_env(seed000.home),
        )
        assert r.returncode != 0, (flag, r.stdout)
        assert name in r.stderr, r.stderr
        assert "export" not in r.stdout


def test_parse_env_lines_handles_quotes():
    exports, unset = parse_env_lines("# c\nexport A='it'\\''s'\nexport B='x y'\nunset C D\n")
    assert exports == {"A": "it's", "B": "x y"}
    assert unset == ["C", "D"]


def test_sigterm_stops_and_store_survives_restart(tmp_path):
    root = tmp_path / "restart"
    with running_cloud(SEED000, root) as c:
        s = authorized_session(c, OWNER)
        r = s.post(
            f"{c.google}/v1/projects/{PROJECT}/secrets/{SECRET}:addVersion",
            json={"payload": {"data": base64.b64encode(b"rotated-key").decode()}},
        )
        assert r.status_code == 200, r.text
        first_google = c.google
    assert c.proc.returncode == 0, f"SIGTERM exit code {c.proc.returncode}"
    try:
        requests.get(first_google + "/oauth2/v3/certs", timeout=2)
        raise AssertionError("the stopped cloud still answers")
    except requests.ConnectionError:
        pass
    with running_cloud(SEED000, root) as c2:
        s = authorized_session(c2, OWNER)
        r = s.get(f"{c2.google}/v1/projects/{PROJECT}/secrets/{SECRET}/versions/latest:access")
        assert r.status_code == 200, r.text
        assert base64.b64decode(r.json()["payload"]["data"]) == b"rotated-key"
        assert r.json()["name"].endswith("/versions/2")
