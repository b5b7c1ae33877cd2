"""Credentials as google-auth finds and refreshes them against the local cloud:
the user's gcloud ADC file, service-account keys minted through the IAM API,
and what the APIs answer to missing or bad tokens."""

from __future__ import annotations

import base64
import json

import google.auth.exceptions
import google.auth.transport.requests
import google.oauth2.credentials
import google.oauth2.id_token
import google.oauth2.service_account
import jwt
import pytest
import requests

from conftest import (
    CHILD_SM_CLIENT,
    CLOUD_PLATFORM,
    OWNER,
    PROJECT,
    SECRET,
    VM_SA,
    authorized_session,
    user_credentials,
)

STRICT_USER_ADC = """
import google.auth, google.auth.transport.requests
creds, project = google.auth.default()
out = {"creds_type": type(creds).__module__ + "." + type(creds).__name__, "project": project,
       "token_uri": creds.token_uri, "account": getattr(creds, "account", None),
       "valid": creds.valid, "token": creds.token}
# Never refresh here: google-auth would send the local refresh token towards
# oauth2.googleapis.com, whatever the file's token_uri says.
emit(out)
"""


def test_user_adc_refreshes_at_the_local_cloud(seed000):
    """UNMODIFIED google.auth.default() in `keyway cloud env --user` gives
    credentials that work against the local cloud with no refresh. google-auth's
    authorized_user loader ignores the ADC file's token_uri (it always uses
    https://oauth2.googleapis.com/token), so the file carries a cached token."""
    out = seed000.run(STRICT_USER_ADC, seed000.user_env(OWNER))
    assert out["creds_type"] == "google.oauth2.credentials.Credentials", out
    assert out["project"] == PROJECT, out
    assert out["account"] == OWNER, out
    # Valid without a refresh, and the token is one the local cloud issued to the owner.
    assert out["valid"] is True, out
    info = requests.get(f"{seed000.google}/tokeninfo", params={"access_token": out["token"]}, timeout=5).json()
    assert info["email"] == OWNER, info
    assert CLOUD_PLATFORM in info["scope"].split(), info


def test_user_token_and_id_token(seed000):
    creds = user_credentials(seed000, OWNER)
    req = google.auth.transport.requests.Request()
    creds.refresh(req)
    assert creds.token and creds.expiry is not None
    info = requests.get(f"{seed000.google}/tokeninfo", params={"access_token": creds.token}, timeout=5).json()
    assert info["email"] == OWNER
    assert CLOUD_PLATFORM in info["scope"].split()
    # The refresh asked for openid (gcloud's ADC scopes): an ID token comes back.
    assert creds.id_token, "no id_token in the refresh response"
    claims = google.oauth2.id_token.verify_token(
        creds.id_token, req, audience=creds.client_id, certs_url=f"{seed000.google}/oauth2/v3/certs"
    )
    assert claims["email"] == OWNER and claims["iss"] == "https://accounts.google.com"


def test_revoked_or_wrong_refresh_token_is_invalid_grant(seed000):
    good = user_credentials(seed000, OWNER)
    bad = google.oauth2.credentials.Credentials(
        token=None,
        refresh_token="1//not-a-token-this-cloud-issued",
        token_uri=good.token_uri,
        client_id=good.client_id,
        client_secret=good.client_secret,
    )
    with pytest.raises(google.auth.exceptions.RefreshError) as ei:
        bad.refresh(google.auth.transport.requests.Request())
    assert "invalid_grant" in str(ei.value)


@pytest.fixture(scope="module")
def minted_key(seed000):
    """The owner mints a JSON key for the VM's service account (IAM API)."""
    s = authorized_session(seed000, OWNER)
    r = s.post(f"{seed000.google}/v1/projects/{PROJECT}/serviceAccounts/{VM_SA}/keys", json={})
    assert r.status_code == 200, r.text
    key = r.json()
    assert key["privateKeyType"] == "TYPE_GOOGLE_CREDENTIALS_FILE"
    info = json.loads(base64.b64decode(key["privateKeyData"]))
    assert info["type"] == "service_account"
    assert info["client_email"] == VM_SA
    assert key["name"].endswith("/keys/" + info["private_key_id"])
    keyfile = seed000.home / "vm-sa-key.json"
    keyfile.write_text(json.dumps(info))
    return info, keyfile


def key_env(seed000, keyfile):
    """A developer's machine with GOOGLE_APPLICATION_CREDENTIALS set to the key."""
    env = seed000.user_env(OWNER)
    env["GOOGLE_APPLICATION_CREDENTIALS"] = str(keyfile)
    return env


def test_minted_key_token_via_jwt_bearer_grant(seed000, minted_key):
    info, _ = minted_key
    assert info["token_uri"] == f"{seed000.google}/token"
    creds = google.oauth2.service_account.Credentials.from_service_account_info(info, scopes=[CLOUD_PLATFORM])
    creds.refresh(google.auth.transport.requests.Request())
    tinfo = requests.get(f"{seed000.google}/tokeninfo", params={"access_token": creds.token}, timeout=5).json()
    assert tinfo["email"] == VM_SA
    assert tinfo["scope"].split() == [CLOUD_PLATFORM]


def test_minted_key_id_token(seed000, minted_key):
    _, keyfile = minted_key
    out = seed000.run(
        """
import google.auth.transport.requests, google.oauth2.id_token
emit({"id_token": google.oauth2.id_token.fetch_id_token(google.auth.transport.requests.Request(), "https://aud.example.com")})
""",
        key_env(seed000, keyfile),
    )
    jwks = jwt.PyJWKClient(f"{seed000.google}/oauth2/v3/certs")
    claims = jwt.decode(
        out["id_token"],
        jwks.get_signing_key_from_jwt(out["id_token"]).key,
        algorithms=["RS256"],
        audience="https://aud.example.com",
        issuer="https://accounts.google.com",
    )
    assert claims["email"] == VM_SA


def test_minted_key_with_secret_manager_client(seed000, minted_key):
    """google.auth.default() picks the key up from GOOGLE_APPLICATION_CREDENTIALS;
    the GAPIC client then authenticates with a self-signed JWT (no token
    endpoint: aud https://secretmanager.googleapis.com/, signed with the key),
    which Google accepts as the service account. The account has no role on
    the secret, so the answer is 403 IAM_PERMISSION_DENIED, not 401."""
    _, keyfile = minted_key
    out = seed000.run(
        CHILD_SM_CLIENT
        + f"""
import jwt as pyjwt
out = {{"creds_type": type(creds).__module__ + "." + type(creds).__name__}}
try:
    client.access_secret_version(name="projects/{PROJECT}/secrets/{SECRET}/versions/latest")
    out["read"] = True
except gexc.GoogleAPICallError as e:
    out["error"] = describe(e)
    tok = e.response.request.headers["Authorization"].split()[1]
    out["bearer_claims"] = pyjwt.decode(tok, options={{"verify_signature": False}})
emit(out)
""",
        key_env(seed000, keyfile),
    )
    assert out["creds_type"] == "google.oauth2.service_account.Credentials", out
    assert "read" not in out, out
    # What the client sent: a self-signed JWT, not a token from /token.
    assert out["bearer_claims"]["iss"] == VM_SA, out
    assert out["bearer_claims"]["aud"] == "https://secretmanager.googleapis.com/", out
    e = out["error"]
    assert e["http_status"] == 403 and e["status"] == "PERMISSION_DENIED", (
        f"self-signed JWT from a service-account key refused: {e['http_status']} {e['status']} {e['reason']}"
    )
    assert e["reason"] == "IAM_PERMISSION_DENIED", e


SECRET_URL = "/v1/projects/kaggle-gpu-lab/secrets/wandb-api-key/versions/latest:access"


def test_missing_token_is_401(seed000):
    r = requests.get(seed000.google + SECRET_URL, timeout=5)
    assert r.status_code == 401, r.text
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    err = r.json()["error"]
    assert err["code"] == 401 and err["status"] == "UNAUTHENTICATED"
    info = [d for d in err["details"] if d["@type"] == "type.googleapis.com/google.rpc.ErrorInfo"]
    assert info and info[0]["reason"] == "CREDENTIALS_MISSING", err


def test_forged_token_is_401(seed000):
    r = requests.get(seed000.google + SECRET_URL, headers={"Authorization": "Bearer ya29.forged"}, timeout=5)
    assert r.status_code == 401, r.text
    err = r.json()["error"]
    assert err["status"] == "UNAUTHENTICATED"
    r = requests.get(f"{seed000.google}/tokeninfo", params={"access_token": "ya29.forged"}, timeout=5)
    assert r.status_code == 400
    assert r.json()["error"] == "invalid_token"
