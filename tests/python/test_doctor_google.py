"""`keyway doctor`, Google half: every diagnosis has a scenario that builds the
failing world on the local cloud, runs `keyway doctor`, checks the diagnosis,
then runs the printed fix VERBATIM with the real gcloud CLI against the local
cloud, and checks that doctor then passes.

"Verbatim": each fix is taken from doctor's TEXT output (the `$ ...` lines; a
long command goes on with ` \\` on the next line, joined here as a shell joins
it), checked equal to the JSON fix's `line`, and run with `sh -c LINE` in the
owner's gcloud environment (`keyway cloud env --user OWNER`), with the value
on stdin where the fix reads it (`--data-file=-`).

Every doctor run is also checked for what a user would see: text lines of at
most 100 columns, no ANSI escape when stdout is not a terminal, the same exit
status and steps in text and JSON, and never a secret value or an access token
(nor a refresh token) on stdout or stderr.

Setup that is not the fix under test (disabling a version, fixing the scopes
before a later diagnosis) goes through the REST API with the owner's token:
gcloud takes 1-2 s a command.
"""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
from pathlib import Path

import shutil
import tempfile

import pytest
import requests

from conftest import SEED000, KEYWAY_BIN, OWNER, PROJECT, SECRET, SECRET_VALUE, VM, VM_SA, running_cloud, set_vm_scopes
from test_cli_fixes import cli_env, clis, err, keyway, out, run  # noqa: F401 (clis: the real CLIs or a loud failure)

REF = f"sm://{PROJECT}/{SECRET}"
ACCESSOR = "roles/secretmanager.secretAccessor"
WIDTH = 100
ANSI = re.compile(r"\x1b\[")
# Never printed by doctor: Google access tokens start so; values and refresh
# tokens are added per test.
ALWAYS_SECRET = ("ya29.", SECRET_VALUE)


# ------------------------------------------------------------------ helpers


@pytest.fixture
def cloud():
    """Seed 000 in a data dir of its own (as `fresh_seed000`), under a short
    path: doctor prints the files it looked at, and a path is one word that is
    never broken, so pytest's 100-column temporary paths would make the lines
    this suite checks longer than any user's."""
    root = Path(tempfile.mkdtemp(prefix="kw-"))
    try:
        with running_cloud(SEED000, root) as c:
            yield c
    finally:
        shutil.rmtree(root, ignore_errors=True)


class Doctor:
    """One `keyway doctor` run: exit status, text, and the JSON report."""

    def __init__(self, rc: int, text: str, report: dict):
        self.rc, self.text, self.report = rc, text, report

    def steps(self, check: str) -> list[dict]:
        return [s for s in self.report["steps"] if s["check"] == check]

    def step(self, check: str) -> dict:
        found = self.steps(check)
        assert len(found) == 1, (check, self.text)
        return found[0]

    def code(self, check: str) -> str:
        s = self.step(check)
        assert s.get("problem"), (check, self.text)
        return s["problem"]["code"]

    def fixes(self, check: str) -> list[dict]:
        return self.step(check)["problem"].get("fixes", [])

    def lines(self, check: str) -> list[str]:
        """The shell lines of the `run` fixes of one step, in order."""
        return [f["line"] for f in self.fixes(check) if f["kind"] == "run"]


def text_commands(text: str) -> list[str]:
    """The `$ ...` commands of doctor's text output, a ` \\`-continued command
    joined as a shell joins it (the backslash-newline and the indentation
    become the one space between two words)."""
    cmds: list[str] = []
    parts: list[str] | None = None
    for line in text.splitlines():
        s = line.strip()
        if parts is None:
            if not s.startswith("$ "):
                continue
            parts = [s[2:]]
        else:
            parts.append(s)
        if parts[-1].endswith(" \\"):
            parts[-1] = parts[-1][:-2]
        else:
            cmds.append(" ".join(parts))
            parts = None
    assert parts is None, f"a command ends with a continuation: {text}"
    return cmds


def check_clean(r: subprocess.CompletedProcess, secrets: tuple[str, ...]) -> None:
    for stream in (r.stdout, r.stderr):
        text = stream.decode(errors="replace")
        for s in ALWAYS_SECRET + secrets:
            assert s not in text, f"doctor printed a secret ({s[:8]}...):\n{text}"


def doctor(env: dict[str, str], *refs: str, secrets: tuple[str, ...] = ()) -> Doctor:
    """`keyway doctor REFS` as text and as JSON; both checked for what a user sees."""
    t = keyway(env, "doctor", *refs, ok=False)
    j = keyway(env, "doctor", "--output", "json", *refs, ok=False)
    for r in (t, j):
        check_clean(r, secrets)
    text = out(t)
    assert t.returncode in (0, 1), f"doctor exited {t.returncode}:\n{text}\n{err(t)}"
    assert t.returncode == j.returncode, (t.returncode, j.returncode, text)
    for line in text.splitlines():
        assert len(line) <= WIDTH, f"a line of {len(line)} columns:\n{line}"
    assert not ANSI.search(text), "colour escapes with stdout not a terminal"
    report = json.loads(out(j))
    assert report["schema"] == "keyway.doctor/v1"
    assert report["ok"] == (t.returncode == 0), (report["ok"], t.returncode)
    assert report["ok"] == (not any(s["status"] == "failed" for s in report["steps"]))
    # The text shows the same steps, in the same order, with the same marks.
    marks = {"ok": "ok  ", "warning": "warn", "failed": "FAIL", "skipped": "skip"}
    shown = [line.strip()[:4] for line in text.splitlines() if line.startswith("  ") and not line.startswith("   ")]
    assert shown == [marks[s["status"]] for s in report["steps"]], text
    # Every fix printed is a JSON fix's line, verbatim, in the same order.
    json_lines = [
        f["line"]
        for s in report["steps"]
        for f in (s.get("problem") or {}).get("fixes", [])
        if f["kind"] == "run"
    ]
    assert text_commands(text) == json_lines, text
    for s in report["steps"]:
        for f in (s.get("problem") or {}).get("fixes", []):
            if f["kind"] == "run":
                assert f["command"][0] == "gcloud", f
    return Doctor(t.returncode, text, report)


def run_fix(env: dict[str, str], line: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    """A printed fix, as a user pastes it into a shell."""
    return run(env, "sh", "-c", line, stdin=stdin)


def owner_token(owner: dict[str, str]) -> str:
    return Path(owner["CLOUDSDK_AUTH_ACCESS_TOKEN_FILE"]).read_text().strip()


def sm(cloud, owner: dict[str, str], method: str, path: str, body: dict | None = None) -> dict:
    """A Secret Manager call as the owner (setup only, not a fix under test)."""
    r = requests.request(
        method, f"{cloud.google}/v1/projects/{PROJECT}/{path}", json=body,
        headers={"Authorization": f"Bearer {owner_token(owner)}"}, timeout=10,
    )
    assert r.status_code == 200, (path, r.status_code, r.text)
    return r.json()


def vm_with_owner(cloud, owner: dict[str, str]) -> dict[str, str]:
    """The VM, with the owner's gcloud identity on the same machine (as on the
    seed's VM after `gcloud auth login`): the account and its access-token file."""
    env = cli_env(cloud, "--instance", VM)
    for k in ("CLOUDSDK_CORE_ACCOUNT", "CLOUDSDK_AUTH_ACCESS_TOKEN_FILE"):
        env[k] = owner[k]
    return env


# ------------------------------------------------- seed 000: scopes, then IAM


def test_vm_scopes_then_permission_fixed_with_the_printed_commands(cloud):
    owner = cli_env(cloud, "--user", OWNER)
    vm = cli_env(cloud, "--instance", VM)

    d = doctor(vm, REF)
    assert d.rc == 1
    assert d.step("identity")["found"].startswith(f"serviceAccount:{VM_SA}, on VM {VM}")
    scopes = d.step("scopes")
    assert scopes["status"] == "failed" and d.code("scopes") == "google_scope_insufficient"
    assert "cloud-platform" not in scopes["found"]
    lines = d.lines("scopes")
    assert len(lines) == 3, lines
    assert lines[0].startswith(f"gcloud compute instances stop {VM} ")
    assert lines[1].startswith(f"gcloud compute instances set-service-account {VM} ")
    assert f"--service-account={VM_SA}" in lines[1] and "--scopes=cloud-platform" in lines[1]
    assert lines[2].startswith(f"gcloud compute instances start {VM} ")
    assert all(f["who"] == "the project owner" for f in d.fixes("scopes"))
    assert "stopped" in d.step("scopes")["problem"]["cause"]
    # The reference fails for the same reason, and points back at the scopes step.
    assert d.step("reference")["status"] == "failed"
    assert d.code("reference") == "google_scope_insufficient"

    for line in lines:
        run_fix(owner, line)

    d = doctor(vm, REF)
    assert d.rc == 1
    assert d.step("scopes")["status"] == "ok" and "cloud-platform" in d.step("scopes")["found"]
    assert d.code("reference") == "google_permission_denied"
    perm = d.step("permission")
    assert perm["status"] == "failed" and perm["found"] == "not granted"
    assert perm["looked_for"] == f"secretmanager.versions.access for serviceAccount:{VM_SA}"
    (line,) = d.lines("reference")
    assert line == (f"gcloud secrets add-iam-policy-binding {SECRET} --project={PROJECT} "
                    f"--member=serviceAccount:{VM_SA} --role={ACCESSOR}")
    run_fix(owner, line)

    d = doctor(vm, REF)
    assert d.rc == 0 and d.report["ok"] is True, d.text
    assert d.step("reference")["found"] == f"version 1 ({len(SECRET_VALUE)} bytes)"
    assert d.text.rstrip().endswith("everything checks out")
    assert out(keyway(vm, "get", REF)) == SECRET_VALUE


def test_user_holds_the_role_the_vm_service_account_does_not(cloud):
    owner = cli_env(cloud, "--user", OWNER)
    set_vm_scopes(cloud, ["https://www.googleapis.com/auth/cloud-platform"])
    env = vm_with_owner(cloud, owner)

    d = doctor(env, REF, secrets=(owner_token(owner),))
    assert d.rc == 1
    assert d.code("reference") == "google_user_has_role_service_account_lacks"
    cause = d.step("reference")["problem"]["cause"]
    assert OWNER in cause and f"serviceAccount:{VM_SA}" in cause, cause
    (line,) = d.lines("reference")
    assert line == (f"gcloud secrets add-iam-policy-binding {SECRET} --project={PROJECT} "
                    f"--member=serviceAccount:{VM_SA} --role={ACCESSOR}")
    run_fix(owner, line)

    d = doctor(env, REF, secrets=(owner_token(owner),))
    assert d.rc == 0, d.text
    assert out(keyway(env, "get", REF)) == SECRET_VALUE


# ------------------------------------------------------- secrets and versions


def test_secret_that_does_not_exist_as_the_owner(cloud):
    owner = cli_env(cloud, "--user", OWNER)
    ref, value = f"sm://{PROJECT}/db-password", b"correct horse battery staple"
    secrets = (value.decode(), owner_token(owner))

    d = doctor(owner, ref, secrets=secrets)
    assert d.rc == 1 and d.code("reference") == "google_secret_not_found"
    create, add = d.lines("reference")
    assert create == f"gcloud secrets create db-password --project={PROJECT} --replication-policy=automatic"
    assert add == f"gcloud secrets versions add db-password --project={PROJECT} --data-file=-"
    run_fix(owner, create)
    run_fix(owner, add, stdin=value)

    d = doctor(owner, ref, secrets=secrets)
    assert d.rc == 0, d.text
    assert keyway(owner, "get", ref).stdout == value


def test_secret_that_does_not_exist_as_the_vm_with_the_owner_beside_it(cloud):
    owner = cli_env(cloud, "--user", OWNER)
    set_vm_scopes(cloud, ["https://www.googleapis.com/auth/cloud-platform"])
    env = vm_with_owner(cloud, owner)
    ref, value = f"sm://{PROJECT}/db-password", b"s3cr3t-for-the-vm"
    secrets = (value.decode(), owner_token(owner))

    # The VM alone gets a 403 whether the secret exists or not; the owner can tell.
    d = doctor(env, ref, secrets=secrets)
    assert d.rc == 1 and d.code("reference") == "google_secret_not_found", d.text
    assert OWNER in d.step("reference")["problem"]["cause"]
    create, add = d.lines("reference")
    run_fix(owner, create)
    run_fix(owner, add, stdin=value)

    # It exists now: the VM's account still lacks the role the owner holds.
    d = doctor(env, ref, secrets=secrets)
    assert d.rc == 1 and d.code("reference") == "google_user_has_role_service_account_lacks", d.text
    (grant,) = d.lines("reference")
    run_fix(owner, grant)

    d = doctor(env, ref, secrets=secrets)
    assert d.rc == 0, d.text
    assert keyway(env, "get", ref).stdout == value


def test_version_that_does_not_exist(cloud):
    owner = cli_env(cloud, "--user", OWNER)
    d = doctor(owner, f"{REF}#7")
    assert d.rc == 1 and d.code("reference") == "google_version_not_found", d.text
    assert "7" in d.step("reference")["problem"]["cause"]
    (line,) = d.lines("reference")
    assert line == f"gcloud secrets versions list {SECRET} --project={PROJECT}"
    listed = out(run_fix(owner, line))
    # gcloud's table: NAME STATE CREATED DESTROYED; the one version there is.
    rows = [r.split() for r in listed.splitlines()[1:] if r.strip()]
    assert [(r[0], r[1]) for r in rows] == [("1", "enabled")], listed
    d = doctor(owner, f"{REF}#{rows[0][0]}")
    assert d.rc == 0, d.text


def test_disabled_version_enabled_by_the_printed_command(cloud):
    owner = cli_env(cloud, "--user", OWNER)
    sm(cloud, owner, "POST", f"secrets/{SECRET}/versions/1:disable", {})
    for ref in (REF, f"{REF}#1"):
        d = doctor(owner, ref)
        assert d.rc == 1 and d.code("reference") == "google_version_disabled", d.text
        (line,) = d.lines("reference")
        # The version's number, whatever the reference said (`latest` is an alias
        # that enable does not take).
        assert line == f"gcloud secrets versions enable 1 --secret={SECRET} --project={PROJECT}"
    run_fix(owner, line)
    d = doctor(owner, REF)
    assert d.rc == 0, d.text
    assert out(keyway(owner, "get", REF)) == SECRET_VALUE


def test_destroyed_version_replaced_by_a_new_one(cloud):
    owner = cli_env(cloud, "--user", OWNER)
    sm(cloud, owner, "POST", f"secrets/{SECRET}/versions/1:destroy", {})
    d = doctor(owner, REF)
    assert d.rc == 1 and d.code("reference") == "google_version_destroyed", d.text
    assert "cannot come back" in d.step("reference")["problem"]["cause"]
    (line,) = d.lines("reference")
    assert line == f"gcloud secrets versions add {SECRET} --project={PROJECT} --data-file=-"
    value = b"a-new-wandb-key"
    run_fix(owner, line, stdin=value)
    d = doctor(owner, REF, secrets=(value.decode(),))
    assert d.rc == 0, d.text
    assert keyway(owner, "get", REF).stdout == value


def test_reference_to_another_project_than_the_credentials(cloud):
    set_vm_scopes(cloud, ["https://www.googleapis.com/auth/cloud-platform"])
    vm = cli_env(cloud, "--instance", VM)
    d = doctor(vm, "sm://kaggle-gpu-lab-prod/wandb-api-key")
    assert d.rc == 1
    p = d.step("project")
    assert p["status"] == "warning" and p["problem"]["code"] == "google_project_mismatch"
    assert p["found"] == PROJECT
    assert "kaggle-gpu-lab-prod" in p["problem"]["cause"] and PROJECT in p["problem"]["cause"]


# -------------------------------------------------------------- credentials


def test_credentials_file_that_does_not_exist(cloud, tmp_path):
    owner = cli_env(cloud, "--user", OWNER)
    missing = tmp_path / "nowhere" / "key.json"
    env = dict(owner, GOOGLE_APPLICATION_CREDENTIALS=str(missing))
    d = doctor(env, REF)
    assert d.rc == 1
    s = d.step("credentials")
    assert s["status"] == "failed" and s["problem"]["code"] == "google_credentials_file_missing"
    assert str(missing) in s["problem"]["cause"] and "GOOGLE_APPLICATION_CREDENTIALS" in s["problem"]["cause"]
    assert d.step("reference")["status"] == "skipped"
    # The fix it names: point it at the file (here, the owner's own ADC file).
    env["GOOGLE_APPLICATION_CREDENTIALS"] = str(cloud.adc_file(OWNER))
    assert doctor(env, REF).rc == 0


@pytest.mark.parametrize(
    "name,text,line",
    [
        # Broken JSON on line 3: its comma is missing (the parser notices on line 4).
        ("broken-json", '{\n  "type": "authorized_user",\n  "client_id": "x"\n  "client_secret": "y"\n}\n', 3),
        # A field missing: an authorized_user file without its refresh token.
        ("missing-field", None, None),
    ],
)
def test_credentials_file_that_is_not_valid(cloud, tmp_path, name, text, line):
    owner = cli_env(cloud, "--user", OWNER)
    good = cloud.adc_file(OWNER).read_text()
    path = tmp_path / f"{name}.json"
    if text is None:
        doc = json.loads(good)
        del doc["refresh_token"]
        text = json.dumps(doc, indent=2) + "\n"
    path.write_text(text)
    env = dict(owner, GOOGLE_APPLICATION_CREDENTIALS=str(path))
    refresh = json.loads(good)["refresh_token"]
    d = doctor(env, REF, secrets=(refresh,))
    assert d.rc == 1
    s = d.step("credentials")
    assert s["status"] == "failed" and s["problem"]["code"] == "google_credentials_file_invalid", d.text
    (fix,) = s["problem"]["fixes"]
    assert fix["kind"] == "edit" and fix["file"] == str(path), fix
    if line is not None:
        assert fix["line"] == line, fix
    else:
        assert fix.get("line") is None and fix["change"] == 'add the field "refresh_token"', fix
    assert f"in {path}" in d.text
    path.write_text(good)
    assert doctor(env, REF, secrets=(refresh,)).rc == 0


def test_user_credentials_revoked(cloud):
    """gcloud's user credentials revoked (as `gcloud auth application-default
    revoke` does from another machine, or a password change): the refresh
    grant answers invalid_grant. The fix, `gcloud auth application-default
    login`, opens a browser to sign in: it cannot run unattended, so this test
    checks the diagnosis and the command, and does not run it."""
    owner = cli_env(cloud, "--user", OWNER)
    adc = json.loads(cloud.adc_file(OWNER).read_text())
    secrets = (adc["refresh_token"], owner_token(owner))
    assert doctor(owner, REF, secrets=secrets).rc == 0
    # What gcloud sends to revoke: the token in the query, an empty form body.
    r = requests.post(f"{cloud.google}/revoke", params={"token": adc["refresh_token"]},
                      headers={"Content-Type": "application/x-www-form-urlencoded"}, timeout=10)
    assert r.status_code == 200, r.text

    d = doctor(owner, REF, secrets=secrets)
    assert d.rc == 1
    assert d.step("credentials")["status"] == "ok"
    tok = d.step("token")
    assert tok["status"] == "failed" and d.code("token") == "google_user_credentials_expired", d.text
    assert "invalid_grant" in tok["problem"]["cause"]
    assert d.lines("token") == ["gcloud auth application-default login"]
    assert d.step("reference")["status"] == "skipped"
    # The access token cached in the ADC file went with the refresh token.
    assert keyway(owner, "get", REF, ok=False).returncode != 0


# --------------------------------------------------------- exit and output


def test_exit_status_and_output(cloud):
    owner = cli_env(cloud, "--user", OWNER)
    # 0: every step checks out (the owner reads the secret).
    d = doctor(owner, REF, secrets=(owner_token(owner),))
    assert d.rc == 0 and all(s["status"] == "ok" for s in d.report["steps"])
    # 2: usage errors.
    for args in (["--no-such-flag"], ["not-a-reference"], ["--output", "yaml"]):
        r = keyway(owner, "doctor", *args, ok=False)
        assert r.returncode == 2, (args, r.returncode, err(r))
        assert out(r) == ""
    # No colour with NO_COLOR, even on a terminal; colour on a terminal otherwise.
    assert not ANSI.search(on_a_terminal(dict(owner, NO_COLOR="1"), REF))
    assert ANSI.search(on_a_terminal(owner, REF))


def on_a_terminal(env: dict[str, str], *args: str) -> str:
    """doctor's stdout when it is a terminal (a pseudo-terminal here)."""
    leader, follower = pty.openpty()
    try:
        p = subprocess.run([str(KEYWAY_BIN), "doctor", *args], env=dict(env, TERM="xterm"), stdout=follower,
                           stderr=subprocess.PIPE, timeout=60)
        os.close(follower)
        follower = -1
        chunks = []
        while True:
            try:
                b = os.read(leader, 65536)
            except OSError:
                break
            if not b:
                break
            chunks.append(b)
    finally:
        if follower >= 0:
            os.close(follower)
        os.close(leader)
    assert p.returncode == 0, p.stderr
    text = b"".join(chunks).decode(errors="replace")
    assert "everything checks out" in text
    return text
