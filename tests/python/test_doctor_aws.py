"""`keyway doctor` on the AWS side and for Workload Identity Federation: each
scenario builds the failing world on the local cloud, runs `keyway doctor`,
checks the diagnosis, then runs the printed fix VERBATIM (the line as the text
report prints it, continuation lines joined, which must equal the JSON report's
`line`) with `sh -c` as the admin, with the real gcloud or aws CLI, and checks
that doctor then passes.

Some diagnoses have no command to run: a task without a task role (the fix is a
task definition revision, test_cli_fixes.py runs it), expired session
credentials (fresh ones), a clock off (NTP on this machine; here the cloud's
clock is set off with `keyway cloud up --clock-offset`, and doctor passes once
they agree), an ECS task on EC2 using its node's role (a warning: it works), and
a credential configuration to edit (the fix names the file and line). Those
check the diagnosis and what the fix names.

The helpers (`cli_env`, `run`, `keyway`, `wif_task`) are test_cli_fixes.py's:
the CLIs run in a child whose environment is exactly what `keyway cloud env`
printed. Network safety is conftest's: a loopback-only namespace, every
endpoint a loopback override.
"""

from __future__ import annotations

import configparser
import json
import subprocess
import time
from datetime import datetime
from pathlib import Path

from conftest import DEAD_METADATA, KEYWAY_BIN, WORLDS, running_cloud, task_env
from test_cli_fixes import (
    ACCOUNT,
    AWS,
    EXEC_ROLE,
    KEY_ARN_PREFIX,
    SEED001,
    SEED002,
    TASK_ROLE,
    WIF_SA,
    cli_env,
    clis,  # noqa: F401  (the autouse fixture: the real CLIs, or a loud failure)
    err,
    keyway,
    out,
    run,
    wif_task,
)

ADMIN_G = "aniyama@example.com"
SEED002_DATASET = "sm://curucuru-logs/bigquery-dataset"
SEED002_CONFIG = "sm://curucuru-logs/rds-to-bigquery-config"
WORLD = WORLDS / "aws-doctor.toml"
DOCTOR_ACCOUNT = "611925370484"
DOCTOR_SECRET = f"arn:aws:secretsmanager:eu-west-1:{DOCTOR_ACCOUNT}:secret:app/db-password"
READER_ROLE = f"arn:aws:iam::{DOCTOR_ACCOUNT}:role/reader"


# ------------------------------------------------------------------ helpers


class Doctor:
    """One `keyway doctor` run, as text and as JSON."""

    def __init__(self, env: dict[str, str], refs: tuple[str, ...]):
        argv = [str(KEYWAY_BIN), "doctor", *refs]
        t = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
        j = subprocess.run(argv + ["-o", "json"], env=env, capture_output=True, text=True, timeout=120)
        assert t.returncode == j.returncode, (t.returncode, j.returncode, t.stdout, j.stdout)
        self.rc = t.returncode
        self.text = t.stdout
        self.stderr = t.stderr
        assert j.stdout, j.stderr
        self.report = json.loads(j.stdout)
        assert self.report["schema"] == "keyway.doctor/v1"
        assert self.report["ok"] == (self.rc == 0), (self.rc, self.report["ok"])

    def __repr__(self) -> str:
        return f"doctor exited {self.rc}\n{self.text}\n{self.stderr}"

    def problem(self, code: str, status: str = "failed") -> dict:
        for s in self.report["steps"]:
            p = s.get("problem")
            if p and p["code"] == code:
                assert s["status"] == status, (s, self)
                return p
        raise AssertionError(f"no step diagnosed {code}:\n{self!r}")

    def commands(self) -> list[str]:
        """The `$ …` lines of the text report, each with its ` \\` continuations joined."""
        lines, cmds, cur = self.text.splitlines(), [], None
        for line in lines:
            s = line.strip()
            if cur is not None:
                cur += " " + s.removesuffix(" \\")
                if not s.endswith(" \\"):
                    cmds.append(cur)
                    cur = None
                continue
            if s.startswith("$ "):
                body = s[2:]
                if body.endswith(" \\"):
                    cur = body.removesuffix(" \\")
                else:
                    cmds.append(body)
        assert cur is None, f"a continuation without its end:\n{self.text}"
        return cmds

    def runnable(self, code: str, status: str = "failed") -> list[dict]:
        """The problem's `run` fixes, each checked to be printed in the text
        report exactly as the JSON report's `line`, and that line to be the
        JSON `command` (the argv) as a shell reads it."""
        fixes = [f for f in self.problem(code, status).get("fixes", []) if f["kind"] == "run"]
        printed = self.commands()
        for f in fixes:
            assert f["line"] in printed, f"JSON line {f['line']!r} is not printed as such:\n{self.text}"
            words = subprocess.run(["sh", "-c", f'set -- {f["line"]}; printf "%s\\0" "$@"'],
                                   capture_output=True, timeout=10)
            assert words.stdout.decode().split("\0")[:-1] == f["command"], (f["line"], f["command"])
        return fixes


def doctor(env: dict[str, str], *refs: str) -> Doctor:
    return Doctor(env, refs)


def sh(env: dict[str, str], line: str, ok: bool = True) -> subprocess.CompletedProcess:
    """A printed fix, verbatim, in a shell with `env`."""
    return run(env, "sh", "-c", line, ok=ok)


def as_person(env: dict[str, str], person: dict[str, str]) -> dict[str, str]:
    """`env` where the person at the machine is also logged in to gcloud (the
    account and its access-token file, as `keyway cloud env --user` sets them)."""
    env = dict(env)
    for k in ("CLOUDSDK_CORE_ACCOUNT", "CLOUDSDK_AUTH_ACCESS_TOKEN_FILE"):
        env[k] = person[k]
    return env


def dead_port_url(path: str = "") -> str:
    return f"http://{DEAD_METADATA}{path}"


# ---------------------------------------------- 1. seed 002: execution-role trap


def test_execution_role_trap_condition_then_workload_identity_user(tmp_path):
    with running_cloud(SEED002, tmp_path / "seed002") as cloud:
        admin = cli_env(cloud, "--user", ADMIN_G)
        direct = wif_task(cloud, "rds-to-bigquery-exec-role")

        # Without the person's gcloud identity: the condition cannot be read;
        # doctor says what to add and prints the describe command, which runs.
        d = doctor(direct)
        assert d.rc == 1, d
        p = d.problem("federation_condition_refused")
        assert f"attribute.aws_role = {EXEC_ROLE}" in p["cause"], p
        assert f"|| attribute.aws_role == '{EXEC_ROLE}'" in p["cause"], p
        [describe] = d.runnable("federation_condition_refused")
        assert describe["command"][:5] == ["gcloud", "iam", "workload-identity-pools", "providers", "describe"]
        condition = out(sh(admin, describe["line"])).strip()
        assert condition == f"attribute.aws_role == '{TASK_ROLE}'"

        # With it: the mapped attributes, the condition, the one that admits the
        # caller too, and the other way out (the task role).
        d = doctor(as_person(direct, admin))
        assert d.rc == 1, d
        p = d.problem("federation_condition_refused")
        cause = p["cause"]
        assert "google.subject = arn:aws:sts::538104962771:assumed-role/ecsTaskExecutionRole/" in cause, cause
        assert f"attribute.aws_role = {EXEC_ROLE}," in cause or f"attribute.aws_role = {EXEC_ROLE}." in cause, cause
        assert f"The condition: {condition}." in cause, cause
        assert "taskRoleArn" in cause and "arn:aws:iam::538104962771:role/rds-to-bigquery-task" in cause, cause
        admits = f"attribute.aws_role in ['{TASK_ROLE}', '{EXEC_ROLE}']"
        assert cause.endswith(admits), cause
        [update] = d.runnable("federation_condition_refused")
        assert update["who"] == "the project owner"
        assert update["command"][:5] == ["gcloud", "iam", "workload-identity-pools", "providers", "update-aws"]
        assert update["command"][-1] == f"--attribute-condition={admits}"
        sh(admin, update["line"])
        assert doctor(direct).rc == 0
        # The role it admitted before still passes.
        assert out(keyway(wif_task(cloud, "rds-to-bigquery"), "token")).startswith("ya29.")

        # Impersonation: the exec role's principalSet lacks workloadIdentityUser.
        imp = wif_task(cloud, "rds-to-bigquery-exec-role", "--service-account", WIF_SA)
        d = doctor(imp, SEED002_CONFIG)
        assert d.rc == 1, d
        p = d.problem("federation_missing_workload_identity_user")
        member = f"principalSet://iam.googleapis.com/projects/402718395026/locations/global/workloadIdentityPools/bq-pool/attribute.aws_role/{EXEC_ROLE}"
        assert WIF_SA in p["cause"] and member in p["cause"], p
        [grant] = d.runnable("federation_missing_workload_identity_user")
        assert grant["command"][:5] == ["gcloud", "iam", "service-accounts", "add-iam-policy-binding", WIF_SA]
        assert f"--member={member}" in grant["command"] and "--role=roles/iam.workloadIdentityUser" in grant["command"]
        sh(admin, grant["line"])
        d = doctor(imp, SEED002_CONFIG)
        assert d.rc == 0, d
        [ref] = [s for s in d.report["steps"] if s["check"] == "reference"]
        assert ref["status"] == "ok" and ref["found"].startswith("version 1 ")


# ---------------------------------------------------- 2. a task without a task role


def test_task_without_a_task_role(start_cloud):
    aws = start_cloud(SEED001)
    d = doctor(task_env(aws, "wevox-batch-no-task-role"), KEY_ARN_PREFIX)
    assert d.rc == 1, d
    p = d.problem("aws_no_task_role")
    assert "taskRoleArn" in p["cause"] and "execution role" in p["cause"], p
    assert d.report["steps"][-1]["status"] == "skipped"

    google = start_cloud(SEED002)
    d = doctor(wif_task(google, "rds-to-bigquery-no-task-role"), SEED002_DATASET)
    assert d.rc == 1, d
    p = d.problem("federation_no_aws_credentials")
    assert "taskRoleArn" in p["cause"] and "aws-provider" in p["cause"] and "bq-pool" in p["cause"], p


# ----------------------------------------------------------- 3. AccessDenied


def test_access_denied_names_the_statement_and_put_role_policy_fixes_it(start_cloud):
    cloud = start_cloud(SEED001)
    admin = cli_env(cloud, "--aws-user", "admin")
    run(admin, AWS, "iam", "delete-role-policy", "--role-name", "wevox-batch-task", "--policy-name", "policy-1")
    task = task_env(cloud, "wevox-batch")
    d = doctor(task, KEY_ARN_PREFIX)
    assert d.rc == 1, d
    p = d.problem("aws_access_denied")
    resource = f"{KEY_ARN_PREFIX}-*"
    statement = {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": resource}
    cause = p["cause"]
    assert f"arn:aws:sts::{ACCOUNT}:assumed-role/wevox-batch-task/" in cause, cause
    assert "secretsmanager:GetSecretValue" in cause and resource in cause and "task ROLE (wevox-batch-task)" in cause, cause
    assert json.loads(cause.split("The statement to add: ", 1)[1]) == statement, cause
    [put] = d.runnable("aws_access_denied")
    assert put["command"][:5] == ["aws", "iam", "put-role-policy", "--role-name", "wevox-batch-task"]
    assert json.loads(put["command"][-1]) == {"Version": "2012-10-17", "Statement": [statement]}
    sh(admin, put["line"])
    d = doctor(task, KEY_ARN_PREFIX)
    assert d.rc == 0, d
    assert d.report["steps"][-1]["found"].startswith("version ")

    # The task's credentials endpoint dead (a broker that is not running).
    d = doctor({**task, "AWS_CONTAINER_CREDENTIALS_FULL_URI": dead_port_url("/v2/credentials/x")}, KEY_ARN_PREFIX)
    assert d.rc == 1, d
    assert "AWS_CONTAINER_CREDENTIALS_FULL_URI" in d.problem("aws_ecs_endpoint_unreachable")["cause"]


# ------------------------------------- 4.-6. the credentials themselves refused


def test_expired_session_credentials(start_cloud):
    cloud = start_cloud(WORLD)
    admin = cli_env(cloud, "--aws-user", "admin")
    creds = json.loads(out(run(admin, AWS, "sts", "assume-role", "--role-arn", READER_ROLE,
                               "--role-session-name", "debug", "--duration-seconds", "900")))["Credentials"]
    env = dict(admin)
    env.update(AWS_ACCESS_KEY_ID=creds["AccessKeyId"], AWS_SECRET_ACCESS_KEY=creds["SecretAccessKey"],
               AWS_SESSION_TOKEN=creds["SessionToken"])
    # The world's sessions live 5 s (its token_lifetime_secs).
    expires = datetime.fromisoformat(creds["Expiration"].replace("Z", "+00:00")).timestamp()
    assert expires - time.time() <= 5.5, creds["Expiration"]
    assert doctor(env, DOCTOR_SECRET).rc == 0
    time.sleep(max(0.0, expires - time.time()) + 1.1)
    d = doctor(env, DOCTOR_SECRET)
    assert d.rc == 1, d
    p = d.problem("aws_credentials_expired")
    assert "environment" in p["cause"] and "aws sts assume-role" in p["cause"], p


def test_stale_session_token_beside_a_long_term_key(start_cloud):
    cloud = start_cloud(WORLD)
    admin = cli_env(cloud, "--aws-user", "admin")
    ini = configparser.ConfigParser()
    ini.read(admin["AWS_SHARED_CREDENTIALS_FILE"])
    [profile] = ini.sections()
    env = dict(admin)
    env.update(AWS_ACCESS_KEY_ID=ini[profile]["aws_access_key_id"],
               AWS_SECRET_ACCESS_KEY=ini[profile]["aws_secret_access_key"],
               AWS_SESSION_TOKEN="IQoJb3JpZ2luX2VjEleftover")
    assert env["AWS_ACCESS_KEY_ID"].startswith("AKIA")
    d = doctor(env, DOCTOR_SECRET)
    assert d.rc == 1, d
    p = d.problem("aws_stale_session_token")
    assert "long-term access key" in p["cause"], p
    [unset] = d.runnable("aws_stale_session_token")
    assert unset["line"] == "unset AWS_SESSION_TOKEN"
    # In the shell that runs keyway, as printed; then doctor passes.
    r = sh(env, f'{unset["line"]} && exec {KEYWAY_BIN} doctor {DOCTOR_SECRET}', ok=False)
    assert r.returncode == 0, (out(r), err(r))
    assert "everything checks out" in out(r)


def test_clock_too_far_off(tmp_path):
    root = tmp_path / "skewed"
    with running_cloud(WORLD, root, "--clock-offset", "1h") as cloud:
        admin = cli_env(cloud, "--aws-user", "admin")
        d = doctor(admin, DOCTOR_SECRET)
        assert d.rc == 1, d
        p = d.problem("aws_clock_skew")
        assert "15 minutes" in p["cause"] and "shared config/credentials files" in p["cause"], p
    # The same store with the clocks agreeing: doctor passes.
    with running_cloud(WORLD, root) as cloud:
        assert doctor(cli_env(cloud, "--aws-user", "admin"), DOCTOR_SECRET).rc == 0


# ------------------------------------- 7. ECS on EC2, falling back to the node


def test_ecs_task_on_ec2_falls_back_to_the_instance_role(start_cloud):
    cloud = start_cloud(WORLD)
    task = task_env(cloud, "batch-on-ec2")
    assert task["AWS_EXECUTION_ENV"] == "AWS_ECS_EC2" and "AWS_CONTAINER_CREDENTIALS_FULL_URI" not in task
    d = doctor(task, DOCTOR_SECRET)
    # It works (the node's role may read the secret), so it is a warning, not a failure.
    assert d.rc == 0, d
    p = d.problem("aws_ecs_uses_instance_role", status="warning")
    assert "taskRoleArn" in p["cause"] and "instance" in p["cause"], p
    [creds] = [s for s in d.report["steps"] if s["check"] == "credentials"]
    assert "role ecs-node" in creds["found"], creds
    assert "no failure, 1 warning(s)" in d.text, d


# ------------------------------------------------ 8. federation settings, endpoints


def test_federation_settings_and_dead_endpoints(start_cloud):
    cloud = start_cloud(SEED002)
    good = wif_task(cloud, "rds-to-bigquery")
    assert doctor(good, SEED002_DATASET).rc == 0
    cred_file = Path(good["GOOGLE_APPLICATION_CREDENTIALS"])
    config = json.loads(cred_file.read_text())

    # An audience that names no provider.
    bad_audience = cred_file.with_name("bad-audience.json")
    bad_audience.write_text(json.dumps({**config, "audience": config["audience"].replace("aws-provider", "no-such-provider")}, indent=2))
    d = doctor({**good, "GOOGLE_APPLICATION_CREDENTIALS": str(bad_audience)}, SEED002_DATASET)
    assert d.rc == 1, d
    p = d.problem("federation_audience_mismatch")
    assert "no-such-provider" in p["cause"], p

    # A token_url that is not Google's: refused before anything is sent, with the file and line.
    bad_url = cred_file.with_name("bad-url.json")
    text = json.dumps({**config, "token_url": "https://sts.example.com/v1/token"}, indent=2)
    bad_url.write_text(text)
    line = next(n for n, l in enumerate(text.splitlines(), 1) if '"token_url"' in l)
    d = doctor({**good, "GOOGLE_APPLICATION_CREDENTIALS": str(bad_url)}, SEED002_DATASET)
    assert d.rc == 1, d
    p = d.problem("federation_bad_url")
    [edit] = p["fixes"]
    assert edit["kind"] == "edit" and edit["file"] == str(bad_url) and edit["line"] == line, edit
    assert "token_url" in edit["change"], edit
    assert f"in {bad_url}, line {line}: set token_url" in " ".join(d.text.split()), d

    # The ECS credentials endpoint dead, for aws1 (test 3 has it for an AWS reference).
    dead_ecs = {**good, "AWS_CONTAINER_CREDENTIALS_FULL_URI": dead_port_url("/v2/credentials/x")}
    d = doctor(dead_ecs, SEED002_DATASET)
    assert d.rc == 1, d
    assert "AWS_CONTAINER_CREDENTIALS_FULL_URI" in d.problem("aws_ecs_endpoint_unreachable")["cause"]

    # A metadata server named but dead (no credentials file to read first).
    no_file = {k: v for k, v in good.items() if k != "GOOGLE_APPLICATION_CREDENTIALS"}
    no_file["GCE_METADATA_HOST"] = DEAD_METADATA
    no_file.pop("NO_GCE_CHECK", None)
    d = doctor(no_file, SEED002_DATASET)
    assert d.rc == 1, d
    assert DEAD_METADATA in d.problem("google_metadata_unreachable")["cause"]
