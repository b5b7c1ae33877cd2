"""Seed 000, walked exactly as the story goes, with official Google clients.

A VM running as the Compute Engine default service account with GCE's default
access scopes cannot read its W&B key from Secret Manager: first the scopes
are missing (ACCESS_TOKEN_SCOPE_INSUFFICIENT), and once the owner gives the VM
cloud-platform scope, IAM says no (PERMISSION_DENIED) until the owner grants
roles/secretmanager.secretAccessor, on the secret or on the project. The owner
reads the same secret with their own credentials all along.

Every step on the VM or as the owner runs in a new Python process whose
environment is exactly what `keyway cloud env` printed.
"""

from __future__ import annotations

from conftest import (
    CHILD_CREDS,
    CHILD_SM_CLIENT,
    CLOUD_PLATFORM,
    GCE_DEFAULT_SCOPES,
    OWNER,
    PROJECT,
    PROJECT_NUMBER,
    SECRET,
    SECRET_VALUE,
    VM,
    VM_SA,
    ZONE,
    Cloud,
    crc32c,
)

LATEST = f"projects/{PROJECT}/secrets/{SECRET}/versions/latest"
SECRET_PATH = f"projects/{PROJECT}/secrets/{SECRET}"
ACCESSOR = "roles/secretmanager.secretAccessor"
VM_MEMBER = f"serviceAccount:{VM_SA}"
RPC = "google.cloud.secretmanager.v1.SecretManagerService.AccessSecretVersion"

# Reads the secret with whatever google.auth.default() finds.
READ_SECRET = (
    CHILD_SM_CLIENT
    + f"""
import base64
out = {{"creds_type": type(creds).__module__ + "." + type(creds).__name__, "project": project}}
try:
    r = client.access_secret_version(name={LATEST!r})
    out["ok"] = {{
        "name": r.name,
        "data_b64": base64.b64encode(r.payload.data).decode(),
        "data_crc32c": r.payload.data_crc32c,
        "has_crc": "data_crc32c" in r.payload,
    }}
except gexc.GoogleAPICallError as e:
    out["error"] = describe(e)
emit(out)
"""
)

# The owner's compute calls, with an AuthorizedSession on the Compute override.
OWNER_COMPUTE = CHILD_CREDS + f"""
import time
from google.auth.transport.requests import AuthorizedSession
assert isinstance(creds, google.oauth2.credentials.Credentials), type(creds)
s = AuthorizedSession(creds)
compute = os.environ["CLOUDSDK_API_ENDPOINT_OVERRIDES_COMPUTE"]
inst = compute + "projects/{PROJECT}/zones/{ZONE}/instances/{VM}"
out = {{"project": project, "creds_type": type(creds).__module__ + "." + type(creds).__name__}}

def wait(op):
    # As gcloud does: poll the zone operation until DONE.
    for _ in range(50):
        if op.get("status") == "DONE":
            return op
        time.sleep(0.1)
        op = s.get(compute + "projects/{PROJECT}/zones/{ZONE}/operations/" + op["name"]).json()
    raise AssertionError("operation never DONE: %r" % op)

out["before"] = s.get(inst).json()
body = {{"email": "{VM_SA}", "scopes": ["{CLOUD_PLATFORM}"]}}
r = s.post(inst + "/setServiceAccount", json=body)
out["set_while_running"] = {{"status": r.status_code, "body": r.json()}}
r = s.post(inst + "/stop")
out["stop_http"] = r.status_code
out["stop_op"] = wait(r.json())
out["stop_op_get"] = s.get(compute + "projects/{PROJECT}/zones/{ZONE}/operations/" + out["stop_op"]["name"]).json()
out["after_stop"] = s.get(inst).json()["status"]
r = s.post(inst + "/setServiceAccount", json=body)
out["set_http"] = r.status_code
out["set_op"] = wait(r.json())
r = s.post(inst + "/start")
out["start_http"] = r.status_code
out["start_op"] = wait(r.json())
out["after"] = s.get(inst).json()
emit(out)
"""

GRANT_ON_SECRET = (
    CHILD_SM_CLIENT
    + f"""
from google.iam.v1 import policy_pb2
out = {{}}
policy = client.get_iam_policy(request={{"resource": {SECRET_PATH!r}}})
out["etag_before"] = policy.etag.hex()
stale = policy_pb2.Policy()
stale.CopyFrom(policy)
policy.bindings.add(role={ACCESSOR!r}, members=[{VM_MEMBER!r}])
new = client.set_iam_policy(request={{"resource": {SECRET_PATH!r}, "policy": policy}})
out["set_bindings"] = [{{"role": b.role, "members": list(b.members)}} for b in new.bindings]
again = client.get_iam_policy(request={{"resource": {SECRET_PATH!r}}})
out["get_bindings"] = [{{"role": b.role, "members": list(b.members)}} for b in again.bindings]
out["etag_after"] = again.etag.hex()
# A read-modify-write from the stale read must not clobber the grant.
stale.bindings.add(role="roles/secretmanager.viewer", members=["user:{OWNER}"])
try:
    client.set_iam_policy(request={{"resource": {SECRET_PATH!r}, "policy": stale}})
    out["stale_write"] = "accepted"
except gexc.GoogleAPICallError as e:
    out["stale_write"] = describe(e)
final = client.get_iam_policy(request={{"resource": {SECRET_PATH!r}}})
out["final_bindings"] = [{{"role": b.role, "members": list(b.members)}} for b in final.bindings]
emit(out)
"""
)

GRANT_ON_PROJECT = CHILD_CREDS + f"""
from google.auth.transport.requests import AuthorizedSession
s = AuthorizedSession(creds)
crm = os.environ["CLOUDSDK_API_ENDPOINT_OVERRIDES_CLOUDRESOURCEMANAGER"]
out = {{}}
r = s.post(crm + "v1/projects/{PROJECT}:getIamPolicy", json={{}})
out["get_http"] = r.status_code
policy = r.json()
out["before"] = policy
policy.setdefault("bindings", []).append({{"role": "{ACCESSOR}", "members": ["{VM_MEMBER}"]}})
r = s.post(crm + "v1/projects/{PROJECT}:setIamPolicy", json={{"policy": policy}})
out["set_http"] = r.status_code
out["set"] = r.json()
r = s.post(crm + "v1/projects/{PROJECT}:getIamPolicy", json={{}})
out["after"] = r.json()
emit(out)
"""


# ----------------------------------------------------------------- the steps


def assert_permission_denied(e: dict) -> None:
    """A 403 PERMISSION_DENIED as the REST client surfaces it. api_core's REST
    path chooses the exception class from the HTTP status alone, so against
    Google too this is google.api_core.exceptions.Forbidden (PermissionDenied
    is its gRPC-code subclass, raised by the gRPC transport)."""
    assert "Forbidden" in e["classes"], e
    assert e["http_status"] == 403 and e["code"] == 403, e
    assert e["status"] == "PERMISSION_DENIED", e


def step_a_vm_lacks_scope(cloud: Cloud) -> None:
    out = cloud.run(READ_SECRET, cloud.instance_env(VM))
    assert out["creds_type"] == "google.auth.compute_engine.credentials.Credentials", out
    assert out["project"] == PROJECT, out
    assert "ok" not in out, f"the VM read the secret without cloud-platform scope: {out}"
    e = out["error"]
    assert_permission_denied(e)
    assert e["server_message"] == "Request had insufficient authentication scopes.", e
    assert "insufficient authentication scopes" in e["message"], e
    assert e["reason"] == "ACCESS_TOKEN_SCOPE_INSUFFICIENT", e
    assert e["domain"] == "googleapis.com", e
    assert e["metadata"] == {"service": "secretmanager.googleapis.com", "method": RPC}, e
    assert e["body"]["error"]["status"] == "PERMISSION_DENIED", e


def step_b_owner_gives_vm_cloud_platform(cloud: Cloud) -> None:
    out = cloud.run(OWNER_COMPUTE, cloud.user_env(OWNER))
    assert out["creds_type"] == "google.oauth2.credentials.Credentials", out
    assert out["project"] == PROJECT, out
    before = out["before"]
    assert before["status"] == "RUNNING", before
    assert before["serviceAccounts"] == [{"email": VM_SA, "scopes": GCE_DEFAULT_SCOPES}], before
    # GCE refuses to change the account or scopes of a running VM.
    bad = out["set_while_running"]
    assert bad["status"] == 400, bad
    assert bad["body"]["error"]["code"] == 400, bad
    for k in ("stop", "set", "start"):
        assert out[f"{k}_http"] == 200, out
        op = out[f"{k}_op"]
        assert op["kind"] == "compute#operation" and op["status"] == "DONE", op
        assert op["targetLink"].endswith(f"/projects/{PROJECT}/zones/{ZONE}/instances/{VM}"), op
        assert op["user"] == OWNER, op
    assert out["stop_op"]["operationType"] == "stop"
    assert out["set_op"]["operationType"] == "setServiceAccount"
    assert out["start_op"]["operationType"] == "start"
    assert out["stop_op_get"]["name"] == out["stop_op"]["name"], out
    assert out["stop_op_get"]["status"] == "DONE", out
    assert out["after_stop"] == "TERMINATED", out
    after = out["after"]
    assert after["status"] == "RUNNING", after
    assert after["serviceAccounts"] == [{"email": VM_SA, "scopes": [CLOUD_PLATFORM]}], after


def step_c_vm_lacks_iam(cloud: Cloud) -> None:
    out = cloud.run(READ_SECRET, cloud.instance_env(VM))
    assert "ok" not in out, f"the VM read the secret with no role on it: {out}"
    e = out["error"]
    assert_permission_denied(e)
    expected = (
        f"Permission 'secretmanager.versions.access' denied for resource "
        f"'projects/{PROJECT}/secrets/{SECRET}/versions/latest' (or it may not exist)."
    )
    assert e["server_message"] == expected, e
    assert e["message"].endswith(": " + expected), e
    assert e["reason"] == "IAM_PERMISSION_DENIED", e
    assert e["domain"] == "iam.googleapis.com", e
    assert e["metadata"] == {"permission": "secretmanager.versions.access", "resource": LATEST}, e


def step_d_grant_on_secret(cloud: Cloud) -> None:
    out = cloud.run(GRANT_ON_SECRET, cloud.user_env(OWNER))
    want = {"role": ACCESSOR, "members": [VM_MEMBER]}
    assert want in out["set_bindings"], out
    assert want in out["get_bindings"], out
    assert out["etag_before"] and out["etag_after"] and out["etag_before"] != out["etag_after"], out
    stale = out["stale_write"]
    assert stale != "accepted", "setIamPolicy with a stale etag overwrote a newer policy"
    # api_core's REST path picks the class from the HTTP code (409 -> Conflict).
    assert "Conflict" in stale["classes"] and stale["http_status"] == 409, stale
    assert stale["status"] == "ABORTED", stale
    assert out["final_bindings"] == out["get_bindings"], out


def step_d_grant_on_project(cloud: Cloud) -> None:
    out = cloud.run(GRANT_ON_PROJECT, cloud.user_env(OWNER))
    assert out["get_http"] == 200 and out["set_http"] == 200, out
    assert {"role": "roles/owner", "members": [f"user:{OWNER}"]} in out["before"]["bindings"], out
    assert out["before"]["etag"], out
    want = {"role": ACCESSOR, "members": [VM_MEMBER]}
    assert want in out["set"]["bindings"], out
    assert want in out["after"]["bindings"], out
    assert {"role": "roles/owner", "members": [f"user:{OWNER}"]} in out["after"]["bindings"], out
    assert out["after"]["etag"] != out["before"]["etag"], out


def assert_reads_seed_value(out: dict) -> None:
    import base64

    assert "error" not in out, out
    ok = out["ok"]
    data = base64.b64decode(ok["data_b64"])
    assert data == SECRET_VALUE.encode(), data
    # Google names resources by project number in responses.
    assert ok["name"] == f"projects/{PROJECT_NUMBER}/secrets/{SECRET}/versions/1", ok
    assert ok["has_crc"], ok
    assert ok["data_crc32c"] == crc32c(data), ok


def step_e_vm_reads(cloud: Cloud) -> None:
    out = cloud.run(READ_SECRET, cloud.instance_env(VM))
    assert out["creds_type"] == "google.auth.compute_engine.credentials.Credentials", out
    assert_reads_seed_value(out)


def step_f_owner_reads(cloud: Cloud) -> None:
    out = cloud.run(READ_SECRET, cloud.user_env(OWNER))
    assert out["creds_type"] == "google.oauth2.credentials.Credentials", out
    assert out["project"] == PROJECT, out
    assert_reads_seed_value(out)


# ----------------------------------------------------------------- the tests


def test_crc32c_helper_is_castagnoli():
    # The check value of CRC-32C (RFC 3720 appendix B.4).
    assert crc32c(b"123456789") == 0xE3069283
    assert crc32c(b"") == 0


def test_owner_reads_from_the_start(fresh_seed000):
    """"It just worked in Colab": the owner's user credentials read the secret
    before anyone touched the VM."""
    step_f_owner_reads(fresh_seed000)


def test_seed000_grant_on_secret(fresh_seed000):
    c = fresh_seed000
    step_a_vm_lacks_scope(c)
    step_b_owner_gives_vm_cloud_platform(c)
    step_c_vm_lacks_iam(c)
    step_d_grant_on_secret(c)
    step_e_vm_reads(c)
    step_f_owner_reads(c)


def test_seed000_grant_on_project(fresh_seed000):
    c = fresh_seed000
    step_a_vm_lacks_scope(c)
    step_b_owner_gives_vm_cloud_platform(c)
    step_c_vm_lacks_iam(c)
    step_d_grant_on_project(c)
    step_e_vm_reads(c)
    step_f_owner_reads(c)


def test_grant_alone_does_not_fix_missing_scope(fresh_seed000):
    """Granting the role without changing the scopes leaves the VM at
    ACCESS_TOKEN_SCOPE_INSUFFICIENT: scopes are checked before IAM."""
    c = fresh_seed000
    step_d_grant_on_secret(c)
    step_a_vm_lacks_scope(c)
