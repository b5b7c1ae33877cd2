"""The per-instance GCE metadata server, as google-auth uses it, and the
guards GCE puts on it."""

from __future__ import annotations

import jwt
import pytest
import requests

from conftest import (
    CLOUD_PLATFORM,
    GCE_DEFAULT_SCOPES,
    PROJECT,
    PROJECT_NUMBER,
    VM,
    VM_SA,
    ZONE,
    authorized_session,
    compute_url,
    set_vm_scopes,
)

AUDIENCE = "https://my-service.example.com"

GOOGLE_AUTH_ON_VM = f"""
import google.auth
import google.auth.transport.requests
from google.auth.compute_engine import _metadata
import google.oauth2.id_token
req = google.auth.transport.requests.Request()
out = {{"ping": _metadata.ping(req)}}
out["project_id"] = _metadata.get_project_id(req)
info = _metadata.get_service_account_info(req)
out["sa_info"] = info
creds, project = google.auth.default()
creds.refresh(req)
out["creds_type"] = type(creds).__module__ + "." + type(creds).__name__
out["project"] = project
out["sa_email"] = creds.service_account_email
out["token"] = creds.token
out["expiry_set"] = creds.expiry is not None
out["universe"] = creds.universe_domain
out["id_token"] = google.oauth2.id_token.fetch_id_token(req, {AUDIENCE!r})
emit(out)
"""


@pytest.fixture(scope="module")
def vm_view(seed000):
    """What google-auth sees on the VM (one child process for the module)."""
    return seed000.run(GOOGLE_AUTH_ON_VM, seed000.instance_env(VM))


def test_google_auth_finds_the_vm(vm_view):
    assert vm_view["ping"] is True
    assert vm_view["project_id"] == PROJECT
    assert vm_view["project"] == PROJECT
    assert vm_view["creds_type"] == "google.auth.compute_engine.credentials.Credentials"
    assert vm_view["sa_email"] == VM_SA
    assert vm_view["sa_info"]["email"] == VM_SA
    assert vm_view["sa_info"]["scopes"] == GCE_DEFAULT_SCOPES
    assert "default" in vm_view["sa_info"]["aliases"]
    assert vm_view["token"] and vm_view["expiry_set"]
    assert vm_view["universe"] == "googleapis.com"


def test_vm_token_carries_instance_scopes(seed000, vm_view):
    r = requests.get(f"{seed000.google}/tokeninfo", params={"access_token": vm_view["token"]}, timeout=5)
    assert r.status_code == 200, r.text
    info = r.json()
    assert info["email"] == VM_SA
    assert sorted(info["scope"].split()) == sorted(GCE_DEFAULT_SCOPES)
    assert CLOUD_PLATFORM not in info["scope"].split()
    assert 0 < int(info["expires_in"]) <= 3600


def test_scopes_query_parameter_is_ignored(seed000):
    """GCE hands out the instance's scopes whatever ?scopes= asks for."""
    md = seed000.metadata(VM)
    r = requests.get(
        f"http://{md}/computeMetadata/v1/instance/service-accounts/default/token",
        params={"scopes": CLOUD_PLATFORM},
        headers={"Metadata-Flavor": "Google"},
        timeout=5,
    )
    assert r.status_code == 200, r.text
    assert r.headers["Metadata-Flavor"] == "Google"
    tok = r.json()
    assert tok["token_type"] == "Bearer" and tok["expires_in"] > 0
    info = requests.get(f"{seed000.google}/tokeninfo", params={"access_token": tok["access_token"]}, timeout=5).json()
    assert CLOUD_PLATFORM not in info["scope"].split(), info
    assert sorted(info["scope"].split()) == sorted(GCE_DEFAULT_SCOPES)


def test_id_token_verifies_against_local_jwks(seed000, vm_view):
    token = vm_view["id_token"]
    assert token.count(".") == 2
    jwks = jwt.PyJWKClient(f"{seed000.google}/oauth2/v3/certs")
    key = jwks.get_signing_key_from_jwt(token)
    claims = jwt.decode(
        token,
        key.key,
        algorithms=["RS256"],
        audience=AUDIENCE,
        issuer="https://accounts.google.com",
        options={"require": ["exp", "iat", "aud", "iss", "sub"]},
    )
    assert claims["email"] == VM_SA
    assert claims["email_verified"] is True
    assert claims["exp"] - claims["iat"] <= 3600
    # The wrong audience does not verify.
    with pytest.raises(jwt.InvalidAudienceError):
        jwt.decode(token, key.key, algorithms=["RS256"], audience="https://other.example.com")


def test_id_token_verifies_with_google_auth(seed000, vm_view):
    import google.auth.transport.requests
    import google.oauth2.id_token

    claims = google.oauth2.id_token.verify_token(
        vm_view["id_token"],
        google.auth.transport.requests.Request(),
        audience=AUDIENCE,
        certs_url=f"{seed000.google}/oauth2/v3/certs",
    )
    assert claims["iss"] == "https://accounts.google.com"
    assert claims["email"] == VM_SA


def test_identity_full_format(seed000):
    md = seed000.metadata(VM)
    r = requests.get(
        f"http://{md}/computeMetadata/v1/instance/service-accounts/default/identity",
        params={"audience": AUDIENCE, "format": "full"},
        headers={"Metadata-Flavor": "Google"},
        timeout=5,
    )
    assert r.status_code == 200, r.text
    claims = jwt.decode(r.text, options={"verify_signature": False})
    ce = claims["google"]["compute_engine"]
    assert ce["project_id"] == PROJECT
    assert ce["project_number"] == PROJECT_NUMBER
    assert ce["zone"] == ZONE
    assert ce["instance_name"] == VM
    # No audience: GCE answers 400.
    r = requests.get(
        f"http://{md}/computeMetadata/v1/instance/service-accounts/default/identity",
        headers={"Metadata-Flavor": "Google"},
        timeout=5,
    )
    assert r.status_code == 400


def test_metadata_flavor_header_required(seed000):
    md = seed000.metadata(VM)
    url = f"http://{md}/computeMetadata/v1/project/project-id"
    r = requests.get(url, timeout=5)
    assert r.status_code == 403, r.text
    assert r.headers.get("Metadata-Flavor") == "Google"
    r = requests.get(url, headers={"Metadata-Flavor": "google-ish"}, timeout=5)
    assert r.status_code == 403
    r = requests.get(url, headers={"Metadata-Flavor": "Google"}, timeout=5)
    assert r.status_code == 200 and r.text == PROJECT


def test_x_forwarded_for_refused(seed000):
    md = seed000.metadata(VM)
    r = requests.get(
        f"http://{md}/computeMetadata/v1/instance/service-accounts/default/token",
        headers={"Metadata-Flavor": "Google", "X-Forwarded-For": "203.0.113.9"},
        timeout=5,
    )
    assert r.status_code == 403, r.text
    assert "access_token" not in r.text


def test_directory_listing_and_recursive(seed000):
    md = seed000.metadata(VM)
    h = {"Metadata-Flavor": "Google"}
    r = requests.get(f"http://{md}/computeMetadata/v1/instance/service-accounts/", headers=h, timeout=5)
    assert r.status_code == 200
    assert r.text.split() == ["default/", f"{VM_SA}/"]
    r = requests.get(f"http://{md}/computeMetadata/v1/instance/", params={"recursive": "true"}, headers=h, timeout=5)
    assert r.status_code == 200
    inst = r.json()
    assert inst["name"] == VM
    assert inst["zone"] == f"projects/{PROJECT_NUMBER}/zones/{ZONE}"
    assert inst["serviceAccounts"]["default"]["email"] == VM_SA
    r = requests.get(f"http://{md}/computeMetadata/v1/instance/no-such-thing", headers=h, timeout=5)
    assert r.status_code == 404


def test_stopped_vm_metadata_answers_503(fresh_seed000):
    c = fresh_seed000
    md = c.metadata(VM)
    h = {"Metadata-Flavor": "Google"}
    token_url = f"http://{md}/computeMetadata/v1/instance/service-accounts/default/token"
    assert requests.get(token_url, headers=h, timeout=5).status_code == 200
    inst = set_vm_scopes(c, ["cloud-platform"], start=False)
    assert inst["status"] == "TERMINATED"
    assert inst["serviceAccounts"][0]["scopes"] == [CLOUD_PLATFORM]
    r = requests.get(token_url, headers=h, timeout=5)
    assert r.status_code == 503, r.text
    assert r.headers.get("Metadata-Flavor") == "Google"
    assert "TERMINATED" in r.text, r.text
    r = requests.get(f"http://{md}/computeMetadata/v1/project/project-id", headers=h, timeout=5)
    assert r.status_code == 503, r.text
    # Started again, it serves tokens with the new scopes.
    r = authorized_session(c).post(compute_url(c) + "/start")
    assert r.status_code == 200, r.text
    r = requests.get(token_url, headers=h, timeout=5)
    assert r.status_code == 200, r.text
    info = requests.get(f"{c.google}/tokeninfo", params={"access_token": r.json()["access_token"]}, timeout=5).json()
    assert info["scope"].split() == [CLOUD_PLATFORM]
