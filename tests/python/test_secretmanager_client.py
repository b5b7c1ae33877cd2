"""Secret Manager v1 through the official client (google-cloud-secret-manager,
REST transport), unmodified, as the project owner; and as a user with no role.

Notes on what the client surfaces (the same against Google): with the REST
transport api_core picks the exception class from the HTTP status alone, so a
400 INVALID_ARGUMENT or FAILED_PRECONDITION is BadRequest, a 403 is Forbidden,
a 409 ABORTED/ALREADY_EXISTS is Conflict. The gRPC status is in the body, so
each check asserts both.
"""

from __future__ import annotations

import pytest
from google.api_core import exceptions as gexc
from google.cloud import secretmanager

from conftest import (
    OWNER,
    PROJECT,
    PROJECT_NUMBER,
    SECRET,
    SECRET_VALUE,
    WORLDS,
    crc32c,
    error_body,
    running_cloud,
    secret_manager_client,
    user_credentials,
)

PARENT = f"projects/{PROJECT}"
INTERN = "intern@example.com"
SHARED = "shared-with-intern"
State = secretmanager.SecretVersion.State


@pytest.fixture(scope="module")
def cloud(tmp_path_factory):
    with running_cloud(WORLDS / "two-users.toml", tmp_path_factory.mktemp("sm")) as c:
        yield c


@pytest.fixture(scope="module")
def owner(cloud):
    return secret_manager_client(cloud, user_credentials(cloud, OWNER))


@pytest.fixture(scope="module")
def intern(cloud):
    return secret_manager_client(cloud, user_credentials(cloud, INTERN))


def sname(secret_id: str) -> str:
    return f"{PARENT}/secrets/{secret_id}"


def numbered(secret_id: str) -> str:
    return f"projects/{PROJECT_NUMBER}/secrets/{secret_id}"


def create(client, secret_id: str, labels: dict | None = None):
    return client.create_secret(
        request={
            "parent": PARENT,
            "secret_id": secret_id,
            "secret": {"replication": {"automatic": {}}, "labels": labels or {}},
        }
    )


def add(client, secret_id: str, data: bytes, crc: int | None = None):
    payload = {"data": data}
    if crc is not None:
        payload["data_crc32c"] = crc
    return client.add_secret_version(request={"parent": sname(secret_id), "payload": payload})


def access(client, secret_id: str, version: str = "latest"):
    return client.access_secret_version(request={"name": f"{sname(secret_id)}/versions/{version}"})


def assert_status(excinfo, cls, http: int, status: str) -> dict:
    e = excinfo.value
    assert isinstance(e, cls), type(e).__mro__
    assert e.code == http, e
    body = error_body(e)
    assert body["code"] == http and body["status"] == status, body
    return body


# ---------------------------------------------------------------- secrets


def test_create_secret_automatic_replication(owner):
    s = create(owner, "sm-create", {"team": "ml"})
    assert s.name == numbered("sm-create")
    assert "automatic" in s.replication
    assert dict(s.labels) == {"team": "ml"}
    assert s.create_time.year >= 2024
    assert s.etag
    got = owner.get_secret(request={"name": sname("sm-create")})
    assert got.name == s.name and dict(got.labels) == {"team": "ml"}

    with pytest.raises(gexc.Conflict) as ei:
        create(owner, "sm-create")
    assert_status(ei, gexc.Conflict, 409, "ALREADY_EXISTS")


def test_create_secret_rejects_bad_id(owner):
    with pytest.raises(gexc.BadRequest) as ei:
        create(owner, "bad id!")
    assert_status(ei, gexc.BadRequest, 400, "INVALID_ARGUMENT")


def test_add_version_with_checksum_and_access_by_number_and_latest(owner):
    create(owner, "sm-versions")
    v1 = add(owner, "sm-versions", b"first", crc32c(b"first"))
    assert v1.name == f"{numbered('sm-versions')}/versions/1"
    assert v1.state == State.ENABLED
    assert v1.client_specified_payload_checksum is True
    v2 = add(owner, "sm-versions", b"second")
    assert v2.name.endswith("/versions/2")
    assert v2.client_specified_payload_checksum is False

    r1 = access(owner, "sm-versions", "1")
    assert r1.name == f"{numbered('sm-versions')}/versions/1"
    assert r1.payload.data == b"first"
    assert r1.payload.data_crc32c == crc32c(b"first")
    latest = access(owner, "sm-versions", "latest")
    assert latest.name == f"{numbered('sm-versions')}/versions/2"
    assert latest.payload.data == b"second"
    assert latest.payload.data_crc32c == crc32c(b"second")


def test_wrong_checksum_is_rejected_and_stores_nothing(owner):
    create(owner, "sm-crc")
    add(owner, "sm-crc", b"good", crc32c(b"good"))
    with pytest.raises(gexc.BadRequest) as ei:
        add(owner, "sm-crc", b"tampered", crc32c(b"tampered") ^ 1)
    assert_status(ei, gexc.BadRequest, 400, "INVALID_ARGUMENT")
    versions = list(owner.list_secret_versions(request={"parent": sname("sm-crc")}))
    assert [v.name for v in versions] == [f"{numbered('sm-crc')}/versions/1"]
    assert access(owner, "sm-crc").payload.data == b"good"


def test_list_secrets_paging_sees_each_secret_once(owner):
    ids = [f"sm-page-{i}" for i in range(7)]
    for i in ids:
        create(owner, i, {"batch": "paging"})
    pager = owner.list_secrets(request={"parent": PARENT, "page_size": 3})
    seen = []
    pages = 0
    for page in pager.pages:
        pages += 1
        assert len(page.secrets) <= 3, len(page.secrets)
        seen += [s.name for s in page.secrets]
    assert len(seen) == len(set(seen)), f"a secret was listed twice: {seen}"
    for i in ids:
        assert seen.count(numbered(i)) == 1, (i, seen)
    assert numbered(SECRET) in seen
    assert pages >= 3, pages  # at least 7 + 1 secrets in pages of 3
    # Iterating the pager (not .pages) yields the same items.
    assert sorted(s.name for s in owner.list_secrets(request={"parent": PARENT, "page_size": 3})) == sorted(seen)


def test_list_secret_versions_newest_first(owner):
    create(owner, "sm-list-versions")
    for d in (b"a", b"b", b"c"):
        add(owner, "sm-list-versions", d)
    owner.disable_secret_version(request={"name": f"{sname('sm-list-versions')}/versions/2"})
    versions = list(owner.list_secret_versions(request={"parent": sname("sm-list-versions")}))
    assert [v.name.rsplit("/", 1)[1] for v in versions] == ["3", "2", "1"]
    assert [v.state for v in versions] == [State.ENABLED, State.DISABLED, State.ENABLED]


def test_disable_enable_destroy(owner):
    create(owner, "sm-states")
    add(owner, "sm-states", b"payload")
    v = f"{sname('sm-states')}/versions/1"

    d = owner.disable_secret_version(request={"name": v})
    assert d.state == State.DISABLED
    assert owner.get_secret_version(request={"name": v}).state == State.DISABLED
    with pytest.raises(gexc.BadRequest) as ei:
        access(owner, "sm-states", "1")
    assert_status(ei, gexc.BadRequest, 400, "FAILED_PRECONDITION")
    with pytest.raises(gexc.BadRequest) as ei:
        access(owner, "sm-states", "latest")
    assert_status(ei, gexc.BadRequest, 400, "FAILED_PRECONDITION")

    e = owner.enable_secret_version(request={"name": v})
    assert e.state == State.ENABLED
    assert access(owner, "sm-states", "1").payload.data == b"payload"

    x = owner.destroy_secret_version(request={"name": v})
    assert x.state == State.DESTROYED
    assert x.destroy_time.year >= 2024
    with pytest.raises(gexc.BadRequest) as ei:
        access(owner, "sm-states", "1")
    assert_status(ei, gexc.BadRequest, 400, "FAILED_PRECONDITION")
    # A destroyed version stays destroyed.
    with pytest.raises(gexc.BadRequest) as ei:
        owner.enable_secret_version(request={"name": v})
    assert_status(ei, gexc.BadRequest, 400, "FAILED_PRECONDITION")
    assert owner.get_secret_version(request={"name": v}).state == State.DESTROYED


def test_update_secret_labels_with_mask(owner):
    before = create(owner, "sm-update", {"app": "old", "keep": "yes"})
    after = owner.update_secret(
        request={
            "secret": {"name": sname("sm-update"), "labels": {"app": "new"}},
            "update_mask": {"paths": ["labels"]},
        }
    )
    assert dict(after.labels) == {"app": "new"}
    assert after.etag != before.etag
    assert dict(owner.get_secret(request={"name": sname("sm-update")}).labels) == {"app": "new"}
    # A path that cannot be updated is refused, and changes nothing.
    with pytest.raises(gexc.BadRequest) as ei:
        owner.update_secret(
            request={"secret": {"name": sname("sm-update"), "labels": {"x": "y"}}, "update_mask": {"paths": ["name"]}}
        )
    assert_status(ei, gexc.BadRequest, 400, "INVALID_ARGUMENT")
    assert dict(owner.get_secret(request={"name": sname("sm-update")}).labels) == {"app": "new"}


def test_delete_secret(owner):
    create(owner, "sm-delete")
    add(owner, "sm-delete", b"gone soon")
    owner.delete_secret(request={"name": sname("sm-delete")})
    with pytest.raises(gexc.NotFound) as ei:
        owner.get_secret(request={"name": sname("sm-delete")})
    assert_status(ei, gexc.NotFound, 404, "NOT_FOUND")
    with pytest.raises(gexc.NotFound):
        access(owner, "sm-delete")
    with pytest.raises(gexc.NotFound):
        owner.delete_secret(request={"name": sname("sm-delete")})
    # The id can be used again.
    assert create(owner, "sm-delete").name == numbered("sm-delete")


# ---------------------------------------------------------------- payloads


def test_payload_size_limit(owner):
    create(owner, "sm-size")
    exact = bytes(range(256)) * 256  # 65536 bytes
    assert len(exact) == 65536
    v = add(owner, "sm-size", exact, crc32c(exact))
    assert v.name.endswith("/versions/1")
    r = access(owner, "sm-size")
    assert r.payload.data == exact
    assert r.payload.data_crc32c == crc32c(exact)

    with pytest.raises(gexc.BadRequest) as ei:
        add(owner, "sm-size", exact + b"x")
    assert_status(ei, gexc.BadRequest, 400, "INVALID_ARGUMENT")
    assert len(list(owner.list_secret_versions(request={"parent": sname("sm-size")}))) == 1


def test_binary_payload_round_trips(owner):
    create(owner, "sm-binary")
    data = bytes(range(256)) + bytes(range(255, -1, -1)) + b"\x00\x00\xff\xfe"
    add(owner, "sm-binary", data, crc32c(data))
    r = access(owner, "sm-binary")
    assert r.payload.data == data
    assert r.payload.data_crc32c == crc32c(data)


# ---------------------------------------------------------------- IAM


OWNERISH = [
    "secretmanager.versions.access",
    "secretmanager.secrets.get",
    "secretmanager.secrets.delete",
    "secretmanager.versions.add",
    "secretmanager.secrets.setIamPolicy",
]


def test_iam_permissions_reports_only_what_is_granted(owner, intern):
    got = owner.test_iam_permissions(request={"resource": sname(SECRET), "permissions": OWNERISH})
    assert sorted(got.permissions) == sorted(OWNERISH)
    got = intern.test_iam_permissions(request={"resource": sname(SHARED), "permissions": OWNERISH})
    assert list(got.permissions) == ["secretmanager.versions.access"]
    got = intern.test_iam_permissions(request={"resource": sname(SECRET), "permissions": OWNERISH})
    assert list(got.permissions) == []


def test_secret_level_accessor_reads_only_that_secret(intern):
    assert access(intern, SHARED).payload.data == b"for-the-intern"
    # secretAccessor is versions.access only: not even get.
    with pytest.raises(gexc.Forbidden) as ei:
        intern.get_secret(request={"name": sname(SHARED)})
    assert_status(ei, gexc.Forbidden, 403, "PERMISSION_DENIED")
    with pytest.raises(gexc.Forbidden) as ei:
        access(intern, SECRET)
    assert_status(ei, gexc.Forbidden, 403, "PERMISSION_DENIED")


def denial(resource: str) -> str:
    return f"Permission 'secretmanager.versions.access' denied for resource '{resource}' (or it may not exist)."


def test_no_role_cannot_tell_missing_from_existing(owner, intern):
    with pytest.raises(gexc.Forbidden) as existing:
        access(intern, SECRET)
    with pytest.raises(gexc.Forbidden) as missing:
        access(intern, "no-such-secret")
    a = assert_status(existing, gexc.Forbidden, 403, "PERMISSION_DENIED")
    b = assert_status(missing, gexc.Forbidden, 403, "PERMISSION_DENIED")
    assert a["message"] == denial(f"{sname(SECRET)}/versions/latest"), a
    assert b["message"] == denial(f"{sname('no-such-secret')}/versions/latest"), b
    # The same answer in every other respect.
    assert existing.value.reason == missing.value.reason == "IAM_PERMISSION_DENIED"
    strip = lambda body, name: str(body).replace(name, "NAME")  # noqa: E731
    assert strip(a, SECRET) == strip(b, "no-such-secret")

    # The owner may know: NotFound.
    with pytest.raises(gexc.NotFound) as ei:
        access(owner, "no-such-secret")
    body = assert_status(ei, gexc.NotFound, 404, "NOT_FOUND")
    assert "no-such-secret" in body["message"], body


def test_no_role_cannot_create_or_list(intern):
    with pytest.raises(gexc.Forbidden) as ei:
        create(intern, "intern-made")
    body = assert_status(ei, gexc.Forbidden, 403, "PERMISSION_DENIED")
    assert "secretmanager.secrets.create" in body["message"], body
    with pytest.raises(gexc.Forbidden) as ei:
        list(intern.list_secrets(request={"parent": PARENT}))
    assert_status(ei, gexc.Forbidden, 403, "PERMISSION_DENIED")


def test_seed_secret_is_intact(owner):
    r = access(owner, SECRET)
    assert r.payload.data == SECRET_VALUE.encode()
    assert r.name == f"{numbered(SECRET)}/versions/1"
    s = owner.get_secret(request={"name": sname(SECRET)})
    assert dict(s.labels) == {"app": "wandb"}
