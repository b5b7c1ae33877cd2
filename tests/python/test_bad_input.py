"""Bad input: a hand-written world file with a mistake stops `keyway cloud up`
at once with a message naming the file, the line and the key; malformed API
requests get Google-shaped 4xx answers, never a 500."""

from __future__ import annotations

import base64
import subprocess
import time

import pytest
import requests

from conftest import KEYWAY_BIN, OWNER, PROJECT, SECRET, base_child_env, authorized_session

HEAD = """\
# a world with one mistake
[[project]]
id = "kaggle-gpu-lab"
number = 482915736104

[[user]]
email = "kyoto@example.com"
"""

# (case id, world text, line the message must name, words it must contain)
BAD_WORLDS = [
    (
        "missing-key",
        '# a world with one mistake\n[[project]]\nid = "kaggle-gpu-lab"\n\n[[user]]\nemail = "kyoto@example.com"\n',
        2,
        ["number"],
    ),
    (
        "wrong-type-number",
        '[[project]]\nid = "kaggle-gpu-lab"\nnumber = "482915736104"\n',
        3,
        ["number"],
    ),
    (
        "wrong-type-scopes",
        HEAD + '\n[[instance]]\nproject = "kaggle-gpu-lab"\nzone = "asia-northeast1-a"\nname = "vm"\nscopes = "cloud-platform"\n',
        13,
        ["scopes"],
    ),
    (
        "unknown-project-instance",
        HEAD + '\n[[instance]]\nproject = "no-such-project"\nzone = "asia-northeast1-a"\nname = "vm"\n',
        9,
        ["project", "no-such-project"],
    ),
    (
        "unknown-project-secret",
        HEAD + '\n[[secret]]\nproject = "other-project"\nname = "s"\n',
        9,
        ["project", "other-project"],
    ),
    (
        "unknown-binding-resource",
        HEAD + '\n[[binding]]\nresource = "projects/nope-nope"\nrole = "roles/owner"\nmembers = ["user:kyoto@example.com"]\n',
        9,
        ["resource", "projects/nope-nope"],
    ),
    (
        "misspelt-key",
        HEAD.replace("number = ", "numbr = "),
        # serde names the unknown key; the line is where it stands (or its table's).
        4,
        ["numbr"],
    ),
    (
        "toml-syntax",
        HEAD + "\n[[instance]\nname = 1\n",
        9,
        [],
    ),
]


@pytest.mark.parametrize("case,text,line,words", BAD_WORLDS, ids=[c[0] for c in BAD_WORLDS])
def test_bad_world_file_fails_fast_and_says_where(tmp_path, case, text, line, words):
    # A neutral file name: the message must name the key, not echo the case.
    world = tmp_path / "world.toml"
    world.write_text(text)
    t0 = time.monotonic()
    r = subprocess.run(
        [str(KEYWAY_BIN), "cloud", "up", "--world", str(world), "--data", str(tmp_path / "data")],
        capture_output=True,
        text=True,
        timeout=15,
        env=base_child_env(tmp_path),
    )
    elapsed = time.monotonic() - t0
    assert r.returncode != 0, f"`keyway cloud up` accepted a bad world ({case}): {r.stdout}"
    assert elapsed < 5, f"took {elapsed:.1f}s to reject"
    assert r.stdout == "", f"a ready line was printed for a bad world: {r.stdout!r}"
    msg = r.stderr
    assert f"{world}:{line}:" in msg, f"expected '{world}:{line}:' in: {msg!r}"
    said = msg.split(f"{world}:{line}:", 1)[1]
    for w in words:
        assert w in said, f"expected the key/value {w!r} to be named in: {msg!r}"
    assert not (tmp_path / "data" / "endpoints.json").exists()


def test_missing_world_file_is_named(tmp_path):
    missing = tmp_path / "nope.toml"
    r = subprocess.run(
        [str(KEYWAY_BIN), "cloud", "up", "--world", str(missing), "--data", str(tmp_path / "data")],
        capture_output=True,
        text=True,
        timeout=15,
        env=base_child_env(tmp_path),
    )
    assert r.returncode != 0
    assert str(missing) in r.stderr, r.stderr


# ------------------------------------------------------------------ the APIs


@pytest.fixture(scope="module")
def owner(seed000):
    return authorized_session(seed000, OWNER)


def assert_google_error(r: requests.Response, code: int, status: str) -> dict:
    assert r.status_code == code, (r.status_code, r.text)
    assert r.headers["Content-Type"].startswith("application/json"), r.headers
    err = r.json()["error"]
    assert err["code"] == code and err["status"] == status, err
    assert isinstance(err["message"], str) and err["message"], err
    return err


def add_version_url(seed000, secret=SECRET):
    return f"{seed000.google}/v1/projects/{PROJECT}/secrets/{secret}:addVersion"


def versions(owner, seed000) -> list:
    r = owner.get(f"{seed000.google}/v1/projects/{PROJECT}/secrets/{SECRET}/versions")
    assert r.status_code == 200, r.text
    return r.json().get("versions", [])


@pytest.mark.parametrize(
    "body",
    [
        b'{"payload": {"data": ',  # truncated
        b"{payload: {data: 'aGk='}}",  # not JSON
        b'{"payload": {"data": 12345}}',  # wrong type
        b'{"payload": "aGk="}',  # wrong shape
        b"[]",
        b'{"payload": {"data": "###not base64###"}}',
        b'{"payload": {"data": "aGk=", "dataCrc32c": "not-a-number"}}',
        b"\xff\xfe\x00garbage",
    ],
    ids=["truncated", "not-json", "data-number", "payload-string", "array", "bad-base64", "crc-string", "binary"],
)
def test_malformed_add_version_is_400(owner, seed000, body):
    before = len(versions(owner, seed000))
    r = owner.post(add_version_url(seed000), data=body, headers={"Content-Type": "application/json"})
    assert_google_error(r, 400, "INVALID_ARGUMENT")
    assert len(versions(owner, seed000)) == before, "a malformed request stored a version"


def test_add_version_without_payload_is_400(owner, seed000):
    r = owner.post(add_version_url(seed000), json={})
    assert_google_error(r, 400, "INVALID_ARGUMENT")


def test_good_add_version_after_bad_ones(owner, seed000):
    r = owner.post(add_version_url(seed000), json={"payload": {"data": base64.b64encode(b"ok").decode()}})
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "ENABLED"


JUNK = [
    ("GET", "/v1/projects/kaggle-gpu-lab/secrets?pageSize=-1", None),
    ("GET", "/v1/projects/kaggle-gpu-lab/secrets?pageSize=99999999999999999999", None),
    ("GET", "/v1/projects/kaggle-gpu-lab/secrets?pageToken=%%%%", None),
    ("GET", "/v1/projects/kaggle-gpu-lab/secrets/wandb-api-key/versions/0:access", None),
    ("GET", "/v1/projects/kaggle-gpu-lab/secrets/wandb-api-key/versions/-1:access", None),
    ("GET", "/v1/projects/kaggle-gpu-lab/secrets/wandb-api-key/versions/99999999999999999999:access", None),
    ("GET", "/v1/projects/kaggle-gpu-lab/secrets/wandb-api-key/versions/%2e%2e:access", None),
    ("GET", "/v1/projects/kaggle-gpu-lab/secrets/wandb-api-key/versions?pageToken=Zm9v", None),
    ("POST", "/v1/projects/kaggle-gpu-lab/secrets?secretId=", b"{}"),
    ("POST", "/v1/projects/kaggle-gpu-lab/secrets?secretId=ok-id", b'{"replication": 5}'),
    ("POST", "/v1/projects/kaggle-gpu-lab/secrets?secretId=ok-id", b'{"labels": {"UPPER": "x"}, "replication": {"automatic": {}}}'),
    ("PATCH", "/v1/projects/kaggle-gpu-lab/secrets/wandb-api-key", b'{"labels": {}}'),
    ("PATCH", "/v1/projects/kaggle-gpu-lab/secrets/wandb-api-key?updateMask=labels", b'{"labels": ["x"]}'),
    ("POST", "/v1/projects/kaggle-gpu-lab/secrets/wandb-api-key:setIamPolicy", b'{"policy": {"bindings": [{"role": "roles/nope", "members": ["user:x@example.com"]}]}}'),
    ("POST", "/v1/projects/kaggle-gpu-lab/secrets/wandb-api-key:setIamPolicy", b'{"policy": {"bindings": [{"role": "roles/viewer", "members": ["not a member"]}]}}'),
    ("POST", "/v1/projects/kaggle-gpu-lab/secrets/wandb-api-key:setIamPolicy", b'{"policy": "x"}'),
    ("POST", "/v1/projects/kaggle-gpu-lab/secrets/wandb-api-key:testIamPermissions", b'{"permissions": "x"}'),
    ("POST", "/v1/projects/kaggle-gpu-lab:setIamPolicy", b'{"policy": {"etag": "stale", "bindings": []}}'),
    ("POST", "/v1/projects/kaggle-gpu-lab:setIamPolicy", b"{not json"),
    ("POST", "/v1/projects/kaggle-gpu-lab/secrets/wandb-api-key:frobnicate", b"{}"),
    ("DELETE", "/v1/projects/kaggle-gpu-lab/secrets/wandb-api-key?etag=%22stale%22", None),
    ("POST", "/compute/v1/projects/kaggle-gpu-lab/zones/asia-northeast1-a/instances/kaggle-gpu-vm/setServiceAccount", b"{oops"),
    ("POST", "/compute/v1/projects/kaggle-gpu-lab/zones/asia-northeast1-a/instances/kaggle-gpu-vm/setServiceAccount", b'{"email": "nobody@example.com"}'),
    ("GET", "/compute/v1/projects/kaggle-gpu-lab/zones/asia-northeast1-a/instances/no-such-vm", None),
    ("GET", "/compute/v1/projects/kaggle-gpu-lab/zones/asia-northeast1-a/operations/no-such-op", None),
    ("GET", "/compute/v1/projects/kaggle-gpu-lab/zones/asia-northeast1-a", None),
    ("POST", "/v1/projects/kaggle-gpu-lab/serviceAccounts/nobody@example.com/keys", b"{}"),
    ("GET", "/v1/projects", None),
    ("GET", "/v2/anything", None),
    ("GET", "/", None),
]


@pytest.mark.parametrize("method,path,body", JUNK, ids=[f"{m} {p}" for m, p, _ in JUNK])
def test_junk_requests_get_google_shaped_4xx(owner, seed000, method, path, body):
    r = owner.request(method, seed000.google + path, data=body, headers={"Content-Type": "application/json"})
    assert r.status_code < 500, f"{method} {path} -> {r.status_code}: {r.text}"
    assert 400 <= r.status_code < 500, f"{method} {path} -> {r.status_code}: {r.text}"
    err = r.json()["error"]
    assert err["code"] == r.status_code, err
    assert err["status"] in {
        "INVALID_ARGUMENT",
        "FAILED_PRECONDITION",
        "NOT_FOUND",
        "PERMISSION_DENIED",
        "ABORTED",
        "ALREADY_EXISTS",
        "OUT_OF_RANGE",
    }, err


def test_seed_secret_survived_the_junk(owner, seed000):
    r = owner.get(f"{seed000.google}/v1/projects/{PROJECT}/secrets/{SECRET}")
    assert r.status_code == 200, r.text
    assert r.json()["labels"] == {"app": "wandb"}
