"""The fixes keyway prints, run VERBATIM with the real `gcloud` and `aws` CLIs
against the local cloud, each followed by the check a user would make.

`keyway cloud env --user EMAIL` configures gcloud as that user (an access-token
file, the account, the project, every API endpoint override, no prompts, no
update checks) and `--aws-user NAME` configures the aws CLI (credentials file,
region, endpoints, no IMDS, no pager). Each CLI runs in a child whose
environment is exactly what `keyway cloud env` printed, with the real CLIs on
PATH (never conftest's gcloud stub): a missing CLI fails the test.

gcloud takes 1-2 s to start, so each command runs once, in the order a user
would type them, and the effect is checked with keyway itself (a process on the
VM, a container of the ECS task), which is fast.

Network safety: the suite runs in a loopback-only namespace (conftest refuses
otherwise); every endpoint the CLIs use is a loopback override, and
`CLOUDSDK_CORE_CHECK_GCE_METADATA=false` / `AWS_EC2_METADATA_DISABLED=true`
keep them from probing metadata addresses.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import requests

from conftest import (
    DEAD_METADATA,
    KEYWAY_BIN,
    OWNER,
    PROJECT,
    REPO,
    SECRET,
    SECRET_VALUE,
    VM,
    VM_SA,
    ZONE,
    WORLDS,
    running_cloud,
    task_env,
)

GCLOUD = shutil.which("gcloud")
AWS = shutil.which("aws")
SEED000 = REPO / "examples" / "seed-000.toml"
SEED001 = REPO / "examples" / "seed-001.toml"
SEED002 = REPO / "examples" / "seed-002.toml"
CLI_TIMEOUT = 120
ACCESSOR = "roles/secretmanager.secretAccessor"


@pytest.fixture(scope="module", autouse=True)
def clis():
    """The real CLIs, or a loud failure: these tests prove commands run verbatim."""
    missing = [n for n, p in (("gcloud", GCLOUD), ("aws", AWS)) if not p]
    if missing:
        pytest.fail(f"{', '.join(missing)} not found on PATH ({os.environ.get('PATH')}): install the Google Cloud CLI and aws-cli")


def cli_path() -> str:
    dirs = []
    for exe in (GCLOUD, AWS, str(KEYWAY_BIN)):
        d = str(Path(exe).parent)
        if d not in dirs:
            dirs.append(d)
    return ":".join(dirs + ["/usr/local/bin", "/usr/bin", "/bin"])


def cli_env(cloud, *who: str) -> dict[str, str]:
    """`eval "$(keyway cloud env --data D WHO...)"` in a clean shell; the result,
    with the real CLIs on PATH."""
    base = {"PATH": cli_path(), "HOME": str(cloud.home), "LANG": "C.UTF-8"}
    r = subprocess.run(
        [str(KEYWAY_BIN), "cloud", "env", "--data", str(cloud.data), *who],
        capture_output=True, text=True, timeout=30, env=base,
    )
    assert r.returncode == 0, f"keyway cloud env {' '.join(who)}: {r.stderr}"
    sh = subprocess.run(["sh", "-c", 'eval "$1" && env -0', "sh", r.stdout], capture_output=True, timeout=10, env=base)
    assert sh.returncode == 0, sh.stderr
    env = dict(item.split("=", 1) for item in sh.stdout.decode().split("\0") if "=" in item)
    env["PATH"] = cli_path()
    env.setdefault("GCE_METADATA_HOST", DEAD_METADATA)
    env.setdefault("GCE_METADATA_IP", DEAD_METADATA)
    for k, v in env.items():
        if k.startswith(("CLOUDSDK_API_ENDPOINT_OVERRIDES_", "AWS_ENDPOINT_URL")):
            assert v.startswith("http://127.0.0.1:"), (k, v)
    return env


def run(env: dict[str, str], *argv: str, ok: bool = True, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    r = subprocess.run(list(argv), env=env, capture_output=True, timeout=CLI_TIMEOUT, input=stdin, cwd=env.get("HOME"))
    if ok:
        assert r.returncode == 0, f"{' '.join(argv)} exited {r.returncode}\n--- stdout\n{r.stdout.decode(errors='replace')}\n--- stderr\n{r.stderr.decode(errors='replace')}"
    return r


def out(r: subprocess.CompletedProcess) -> str:
    return r.stdout.decode()


def err(r: subprocess.CompletedProcess) -> str:
    return r.stderr.decode(errors="replace")


def keyway(env: dict[str, str], *args: str, ok: bool = True) -> subprocess.CompletedProcess:
    return run(env, str(KEYWAY_BIN), *args, ok=ok)


# --------------------------------------------------------------- the env itself


def test_cloud_env_configures_gcloud_and_aws(seed000):
    env = cli_env(seed000, "--user", OWNER)
    for k in ("CLOUDSDK_CONFIG", "CLOUDSDK_AUTH_ACCESS_TOKEN_FILE"):
        assert os.path.isabs(env[k]), (k, env[k])
    token_file = Path(env["CLOUDSDK_AUTH_ACCESS_TOKEN_FILE"])
    assert token_file.stat().st_mode & 0o777 == 0o600
    assert env["CLOUDSDK_CORE_ACCOUNT"] == OWNER
    assert env["CLOUDSDK_CORE_PROJECT"] == PROJECT
    assert env["CLOUDSDK_CORE_DISABLE_PROMPTS"] == "1"
    assert env["CLOUDSDK_CORE_CHECK_GCE_METADATA"] == "false"
    assert env["CLOUDSDK_API_ENDPOINT_OVERRIDES_COMPUTE"].endswith("/compute/v1/")
    assert env["AWS_PAGER"] == "" and env["AWS_EC2_METADATA_DISABLED"] == "true"
    assert env["AWS_ENDPOINT_URL_IAM"] == seed000.endpoints["aws"]
    # The ADC file google-auth reads is still there, beside gcloud's token.
    adc = json.loads((Path(env["CLOUDSDK_CONFIG"]) / "application_default_credentials.json").read_text())
    assert adc["type"] == "authorized_user"
    # gcloud is logged in as the owner: no "You do not currently have an active account selected".
    r = run(env, GCLOUD, "config", "list", "--format=json")
    cfg = json.loads(out(r))
    assert cfg["core"]["account"] == OWNER and cfg["core"]["project"] == PROJECT
    # The token is the owner's, fresh from the cloud's refresh grant (never the refresh token).
    token = token_file.read_text()
    assert token.startswith("ya29.")
    # Neither the token nor the refresh token is ever in the printed environment.
    assert token not in json.dumps(env) and adc["refresh_token"] not in json.dumps(env)
    info = requests.get(f"{seed000.google}/tokeninfo", params={"access_token": token}, timeout=10).json()
    assert info["email"] == OWNER, info


# ------------------------------------------------------------- seed 000, owner


def test_seed000_owner_fixes_the_vm_with_gcloud(fresh_seed000):
    cloud = fresh_seed000
    owner = cli_env(cloud, "--user", OWNER)
    vm = cli_env(cloud, "--instance", VM)
    read = ("get", f"sm://{PROJECT}/{SECRET}")

    r = keyway(vm, *read, ok=False)
    assert r.returncode != 0 and "ACCESS_TOKEN_SCOPE_INSUFFICIENT" in err(r), err(r)

    # The three commands that change a VM's scopes, verbatim.
    run(owner, GCLOUD, "compute", "instances", "stop", VM, f"--zone={ZONE}", f"--project={PROJECT}")
    run(owner, GCLOUD, "compute", "instances", "set-service-account", VM, f"--zone={ZONE}",
        f"--service-account={VM_SA}", "--scopes=cloud-platform", f"--project={PROJECT}")
    r = run(owner, GCLOUD, "compute", "instances", "start", VM, f"--zone={ZONE}", f"--project={PROJECT}")
    assert "Instance internal IP is 10." in err(r) and "external IP is 203.0.113." in err(r), err(r)
    r = run(owner, GCLOUD, "compute", "instances", "describe", VM, f"--zone={ZONE}", f"--project={PROJECT}", "--format=json")
    inst = json.loads(out(r))
    assert inst["status"] == "RUNNING"
    assert inst["serviceAccounts"] == [{"email": VM_SA, "scopes": ["https://www.googleapis.com/auth/cloud-platform"]}]
    assert inst["lastStopTimestamp"] < inst["lastStartTimestamp"]

    # The scope is right now; IAM says no.
    r = keyway(vm, *read, ok=False)
    assert r.returncode != 0 and "secretmanager.versions.access" in err(r), err(r)

    member = f"serviceAccount:{VM_SA}"
    run(owner, GCLOUD, "secrets", "add-iam-policy-binding", SECRET, f"--project={PROJECT}",
        f"--member={member}", f"--role={ACCESSOR}")
    assert out(keyway(vm, *read)) == SECRET_VALUE
    r = run(owner, GCLOUD, "secrets", "get-iam-policy", SECRET, f"--project={PROJECT}", "--format=json")
    assert {"role": ACCESSOR, "members": [member]} in json.loads(out(r))["bindings"]

    run(owner, GCLOUD, "secrets", "remove-iam-policy-binding", SECRET, f"--project={PROJECT}",
        f"--member={member}", f"--role={ACCESSOR}")
    assert keyway(vm, *read, ok=False).returncode != 0

    # The same grant on the project instead.
    run(owner, GCLOUD, "projects", "add-iam-policy-binding", PROJECT, f"--member={member}", f"--role={ACCESSOR}")
    assert out(keyway(vm, *read)) == SECRET_VALUE
    r = run(owner, GCLOUD, "projects", "get-iam-policy", PROJECT, "--format=json")
    bindings = json.loads(out(r))["bindings"]
    assert any(b["role"] == ACCESSOR and member in b["members"] for b in bindings), bindings
    assert any(b["role"] == "roles/owner" and f"user:{OWNER}" in b["members"] for b in bindings), bindings


def test_secret_versions_with_gcloud(fresh_seed000, tmp_path):
    cloud = fresh_seed000
    owner = cli_env(cloud, "--user", OWNER)
    name = "db-password"
    run(owner, GCLOUD, "secrets", "create", name, f"--project={PROJECT}", "--replication-policy=automatic")
    r = run(owner, GCLOUD, "secrets", "describe", name, f"--project={PROJECT}", "--format=json")
    desc = json.loads(out(r))
    assert desc["name"].endswith(f"/secrets/{name}") and "automatic" in desc["replication"]

    data = tmp_path / "value"
    data.write_bytes(b"s3cr3t with spaces\nand a second line")
    run(owner, GCLOUD, "secrets", "versions", "add", name, f"--data-file={data}", f"--project={PROJECT}")
    r = run(owner, GCLOUD, "secrets", "versions", "access", "1", f"--secret={name}", f"--project={PROJECT}")
    assert r.stdout == data.read_bytes()
    # What a workload reads is what gcloud stored, byte for byte.
    assert keyway(owner, "get", f"sm://{PROJECT}/{name}").stdout == data.read_bytes()

    run(owner, GCLOUD, "secrets", "versions", "disable", "1", f"--secret={name}", f"--project={PROJECT}")
    r = keyway(owner, "get", f"sm://{PROJECT}/{name}", ok=False)
    assert r.returncode != 0 and "DISABLED" in err(r), err(r)
    r = run(owner, GCLOUD, "secrets", "versions", "list", name, f"--project={PROJECT}", "--format=json")
    assert [v["state"] for v in json.loads(out(r))] == ["DISABLED"]
    run(owner, GCLOUD, "secrets", "versions", "enable", "1", f"--secret={name}", f"--project={PROJECT}")
    assert keyway(owner, "get", f"sm://{PROJECT}/{name}").stdout == data.read_bytes()


def test_service_account_iam_with_gcloud(start_cloud):
    """A binding on the service account itself (not the project) is what
    IAM Credentials decides impersonation with."""
    cloud = start_cloud(WORLDS / "two-users.toml")
    owner = cli_env(cloud, "--user", OWNER)
    intern = cli_env(cloud, "--user", "intern@example.com")
    r = run(owner, GCLOUD, "iam", "service-accounts", "describe", VM_SA, f"--project={PROJECT}", "--format=json")
    assert json.loads(out(r))["email"] == VM_SA
    r = run(owner, GCLOUD, "iam", "service-accounts", "list", f"--project={PROJECT}", "--format=json")
    assert VM_SA in [a["email"] for a in json.loads(out(r))]

    def generate(env) -> requests.Response:
        token = Path(env["CLOUDSDK_AUTH_ACCESS_TOKEN_FILE"]).read_text()
        return requests.post(
            f"{cloud.google}/v1/projects/-/serviceAccounts/{VM_SA}:generateAccessToken",
            json={"scope": ["https://www.googleapis.com/auth/cloud-platform"]},
            headers={"Authorization": f"Bearer {token}"}, timeout=10,
        )

    # (gcloud retries a denied impersonation for ~10 s, waiting for IAM to
    # propagate; the denial is checked on the API directly.)
    assert generate(intern).status_code == 403
    run(owner, GCLOUD, "iam", "service-accounts", "add-iam-policy-binding", VM_SA, f"--project={PROJECT}",
        "--member=user:intern@example.com", "--role=roles/iam.serviceAccountTokenCreator")
    r = run(intern, GCLOUD, "auth", "print-access-token", f"--impersonate-service-account={VM_SA}")
    token = out(r).strip()
    info = requests.get(f"{cloud.google}/tokeninfo", params={"access_token": token}, timeout=10).json()
    assert info["email"] == VM_SA, info
    r = run(owner, GCLOUD, "iam", "service-accounts", "get-iam-policy", VM_SA, f"--project={PROJECT}", "--format=json")
    assert {"role": "roles/iam.serviceAccountTokenCreator", "members": ["user:intern@example.com"]} in json.loads(out(r))["bindings"]
    run(owner, GCLOUD, "iam", "service-accounts", "remove-iam-policy-binding", VM_SA, f"--project={PROJECT}",
        "--member=user:intern@example.com", "--role=roles/iam.serviceAccountTokenCreator")
    assert generate(intern).status_code == 403
    # Only who may set the account's policy may change it.
    r = run(intern, GCLOUD, "iam", "service-accounts", "add-iam-policy-binding", VM_SA, f"--project={PROJECT}",
            "--member=user:intern@example.com", "--role=roles/iam.serviceAccountTokenCreator", ok=False)
    assert r.returncode != 0 and "iam.serviceAccounts.getIamPolicy" in err(r), err(r)


# ------------------------------------------------------- seed 002, federation

PROVIDER = "projects/402718395026/locations/global/workloadIdentityPools/bq-pool/providers/aws-provider"
WIF_SA = "rds-to-bigquery@curucuru-logs.iam.gserviceaccount.com"
POOL_SET = "principalSet://iam.googleapis.com/projects/402718395026/locations/global/workloadIdentityPools/bq-pool/attribute.aws_role"
TASK_ROLE = "arn:aws:sts::538104962771:assumed-role/rds-to-bigquery-task"
EXEC_ROLE = "arn:aws:sts::538104962771:assumed-role/ecsTaskExecutionRole"
PROVIDER_ARGS = ("aws-provider", "--workload-identity-pool=bq-pool", "--location=global", "--project=curucuru-logs")


def wif_task(cloud, task: str, *cred_args: str) -> dict[str, str]:
    """A container of `task` whose GOOGLE_APPLICATION_CREDENTIALS is the pool's aws1 configuration."""
    env = task_env(cloud, task)
    path = cloud.home / f"cred-{task}-{len(cred_args)}.json"
    keyway(env, "cloud", "cred-config", "--data", str(cloud.data), PROVIDER, "--aws", *cred_args, "--output-file", str(path))
    env["GOOGLE_APPLICATION_CREDENTIALS"] = str(path)
    env["PATH"] = cli_path()
    return env


def test_provider_condition_and_pool_binding_with_gcloud(tmp_path):
    root = tmp_path / "seed002"
    with running_cloud(SEED002, root) as cloud:
        admin = cli_env(cloud, "--user", "aniyama@example.com")
        # The trap: the execution role as the task role. STS refuses it by the condition.
        direct = wif_task(cloud, "rds-to-bigquery-exec-role")
        r = keyway(direct, "token", ok=False)
        assert r.returncode != 0 and "unauthorized_client" in err(r), err(r)
        r = run(admin, GCLOUD, "iam", "workload-identity-pools", "providers", "describe", *PROVIDER_ARGS,
                "--format=value(attributeCondition)")
        assert out(r).strip() == f"attribute.aws_role == '{TASK_ROLE}'"

        condition = f"attribute.aws_role in ['{TASK_ROLE}', '{EXEC_ROLE}']"
        r = run(admin, GCLOUD, "iam", "workload-identity-pools", "providers", "update-aws", *PROVIDER_ARGS,
                f"--attribute-condition={condition}", "--format=json")
        op = json.loads(out(r))
        assert op["done"] is True and op["response"]["attributeCondition"] == condition, op
        r = run(admin, GCLOUD, "iam", "workload-identity-pools", "providers", "operations", "describe", op["name"],
                "--format=json")
        assert json.loads(out(r))["done"] is True
        # The exchange now passes the condition: a federated token.
        assert out(keyway(direct, "token")).startswith("ya29.")

        # Impersonation still needs roles/iam.workloadIdentityUser for the role's principalSet.
        imp = wif_task(cloud, "rds-to-bigquery-exec-role", "--service-account", WIF_SA)
        read = ("get", "sm://curucuru-logs/rds-to-bigquery-config")
        r = keyway(imp, *read, ok=False)
        assert r.returncode != 0 and "iam.serviceAccounts.getAccessToken" in err(r), err(r)
        run(admin, GCLOUD, "iam", "service-accounts", "add-iam-policy-binding", WIF_SA, "--project=curucuru-logs",
            f"--member={POOL_SET}/{EXEC_ROLE}", "--role=roles/iam.workloadIdentityUser")
        assert json.loads(out(keyway(imp, *read)))["dataset"] == "curucuru_logs"

        # update-oidc sends the same PATCH; an invalid condition is refused and changes nothing.
        r = run(admin, GCLOUD, "iam", "workload-identity-pools", "providers", "update-aws", *PROVIDER_ARGS,
                "--attribute-condition=attribute.aws_role ==", ok=False)
        assert r.returncode != 0 and "INVALID_ARGUMENT" in err(r), err(r)
        run(admin, GCLOUD, "iam", "workload-identity-pools", "providers", "update-oidc", *PROVIDER_ARGS,
            f"--attribute-condition=attribute.aws_role == '{TASK_ROLE}'")
        assert keyway(direct, "token", ok=False).returncode != 0

    # Durable: after a restart the store holds the updated condition and binding.
    with running_cloud(SEED002, root) as cloud:
        admin = cli_env(cloud, "--user", "aniyama@example.com")
        r = run(admin, GCLOUD, "iam", "workload-identity-pools", "providers", "describe", *PROVIDER_ARGS,
                "--format=value(attributeCondition)")
        assert out(r).strip() == f"attribute.aws_role == '{TASK_ROLE}'"
        r = run(admin, GCLOUD, "iam", "service-accounts", "get-iam-policy", WIF_SA, "--format=json")
        members = [m for b in json.loads(out(r))["bindings"] for m in b["members"]]
        assert f"{POOL_SET}/{EXEC_ROLE}" in members


# ------------------------------------------------------------------ AWS, IAM

ACCOUNT = "380214597362"
KEY_ARN_PREFIX = f"arn:aws:secretsmanager:ap-northeast-1:{ACCOUNT}:secret:wevox/gcp-credentials"
READ_POLICY = json.dumps({"Version": "2012-10-17", "Statement": [{
    "Effect": "Allow", "Action": "secretsmanager:GetSecretValue",
    "Resource": f"{KEY_ARN_PREFIX}-*"}]})


def aws_json(env, *args: str, ok: bool = True) -> dict | subprocess.CompletedProcess:
    r = run(env, AWS, *args, ok=ok)
    if not ok:
        return r
    text = out(r).strip()
    return json.loads(text) if text else {}


def test_aws_iam_fixes_with_the_aws_cli(tmp_path):
    root = tmp_path / "seed001"
    with running_cloud(SEED001, root) as cloud:
        admin = cli_env(cloud, "--aws-user", "admin")
        ogura = cli_env(cloud, "--aws-user", "ogura")
        who = aws_json(admin, "sts", "get-caller-identity")
        assert who["Arn"] == f"arn:aws:iam::{ACCOUNT}:user/admin"

        # Secrets Manager, by name and by ARN, through the CLI.
        listed = aws_json(ogura, "secretsmanager", "list-secrets")["SecretList"]
        arn = next(s["ARN"] for s in listed if s["Name"] == "wevox/gcp-credentials")
        assert aws_json(ogura, "secretsmanager", "describe-secret", "--secret-id", "wevox/gcp-credentials")["ARN"] == arn
        v = aws_json(ogura, "secretsmanager", "get-secret-value", "--secret-id", arn)
        assert json.loads(v["SecretString"])["type"] == "service_account"
        aws_json(ogura, "secretsmanager", "delete-secret", "--secret-id", arn, "--recovery-window-in-days", "7")
        r = aws_json(ogura, "secretsmanager", "get-secret-value", "--secret-id", "wevox/gcp-credentials", ok=False)
        assert r.returncode != 0 and "InvalidRequestException" in err(r), err(r)
        aws_json(ogura, "secretsmanager", "restore-secret", "--secret-id", "wevox/gcp-credentials")
        assert aws_json(ogura, "secretsmanager", "get-secret-value", "--secret-id", "wevox/gcp-credentials")["ARN"] == arn

        # A user without IAM rights is refused, in AWS's words.
        r = aws_json(ogura, "iam", "put-role-policy", "--role-name", "wevox-batch-task", "--policy-name", "read-key",
                     "--policy-document", READ_POLICY, ok=False)
        assert r.returncode != 0
        assert (f"User: arn:aws:iam::{ACCOUNT}:user/ogura is not authorized to perform: iam:PutRolePolicy on resource: "
                "role wevox-batch-task because no identity-based policy allows the iam:PutRolePolicy action") in err(r), err(r)

        # The task role loses its policy: the task's own read is denied...
        task = task_env(cloud, "wevox-batch")
        task["PATH"] = cli_path()
        names = aws_json(admin, "iam", "list-role-policies", "--role-name", "wevox-batch-task")["PolicyNames"]
        assert names == ["policy-1"]
        aws_json(admin, "iam", "delete-role-policy", "--role-name", "wevox-batch-task", "--policy-name", "policy-1")
        r = keyway(task, "get", KEY_ARN_PREFIX, ok=False)
        assert r.returncode != 0 and "AccessDenied" in err(r), err(r)
        # ...and the printed fix, verbatim, gives it back at once.
        aws_json(admin, "iam", "put-role-policy", "--role-name", "wevox-batch-task", "--policy-name", "read-key",
                 "--policy-document", READ_POLICY)
        assert json.loads(out(keyway(task, "get", KEY_ARN_PREFIX)))["type"] == "service_account"
        got = aws_json(admin, "iam", "get-role-policy", "--role-name", "wevox-batch-task", "--policy-name", "read-key")
        assert got["PolicyDocument"] == json.loads(READ_POLICY)
        assert aws_json(admin, "iam", "list-role-policies", "--role-name", "wevox-batch-task")["PolicyNames"] == ["read-key"]

        # A trust policy decides AssumeRole from the moment it is updated.
        role_arn = f"arn:aws:iam::{ACCOUNT}:role/wevox-batch-task"
        assume = ("sts", "assume-role", "--role-arn", role_arn, "--role-session-name", "debug")
        r = aws_json(ogura, *assume, ok=False)
        assert r.returncode != 0 and "AccessDenied" in err(r), err(r)
        trust = {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "ecs-tasks.amazonaws.com"}, "Action": "sts:AssumeRole"},
            {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:user/ogura"}, "Action": "sts:AssumeRole"}]}
        aws_json(admin, "iam", "update-assume-role-policy", "--role-name", "wevox-batch-task",
                 "--policy-document", json.dumps(trust))
        assert aws_json(ogura, *assume)["AssumedRoleUser"]["Arn"].endswith(":assumed-role/wevox-batch-task/debug")
        assert aws_json(admin, "iam", "get-role", "--role-name", "wevox-batch-task")["Role"]["AssumeRolePolicyDocument"] == trust

        # A user policy: ogura may read roles once it is put.
        r = aws_json(ogura, "iam", "get-role", "--role-name", "wevox-batch-task", ok=False)
        assert r.returncode != 0 and "iam:GetRole" in err(r), err(r)
        read_iam = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["iam:GetRole", "iam:List*"], "Resource": "*"}]}
        aws_json(admin, "iam", "put-user-policy", "--user-name", "ogura", "--policy-name", "read-iam",
                 "--policy-document", json.dumps(read_iam))
        assert aws_json(ogura, "iam", "get-role", "--role-name", "wevox-batch-task")["Role"]["Arn"] == role_arn
        assert aws_json(admin, "iam", "get-user-policy", "--user-name", "ogura", "--policy-name", "read-iam")["PolicyDocument"] == read_iam
        assert aws_json(admin, "iam", "list-user-policies", "--user-name", "ogura")["PolicyNames"] == ["policy-1", "read-iam"]

    # Durable: the new policies and trust survive a restart.
    with running_cloud(SEED001, root) as cloud:
        admin = cli_env(cloud, "--aws-user", "admin")
        assert aws_json(admin, "iam", "list-role-policies", "--role-name", "wevox-batch-task")["PolicyNames"] == ["read-key"]
        assert aws_json(admin, "iam", "get-role", "--role-name", "wevox-batch-task")["Role"]["AssumeRolePolicyDocument"] == trust


def test_task_without_a_task_role_gets_one_by_a_new_revision(start_cloud):
    cloud = start_cloud(SEED001)
    admin = cli_env(cloud, "--aws-user", "admin")
    name = "wevox-batch-no-task-role"
    before = task_env(cloud, name)
    assert "AWS_CONTAINER_CREDENTIALS_FULL_URI" not in before
    assert before["KEY"].startswith("{")  # ECS still injected the secret with the execution role.
    td = aws_json(admin, "ecs", "describe-task-definition", "--task-definition", name)["taskDefinition"]
    assert td["revision"] == 1 and "taskRoleArn" not in td

    containers = [{"name": "wevox-batch", "image": "wevox-batch:latest", "essential": True,
                   "secrets": [{"name": "KEY", "valueFrom": KEY_ARN_PREFIX}]}]
    new = aws_json(admin, "ecs", "register-task-definition", "--family", name,
                   "--task-role-arn", f"arn:aws:iam::{ACCOUNT}:role/wevox-batch-task",
                   "--execution-role-arn", f"arn:aws:iam::{ACCOUNT}:role/ecsTaskExecutionRole",
                   "--requires-compatibilities", "FARGATE", "--network-mode", "awsvpc", "--cpu", "256", "--memory", "512",
                   "--container-definitions", json.dumps(containers))["taskDefinition"]
    assert new["revision"] == 2 and new["taskRoleArn"].endswith(":role/wevox-batch-task")
    assert aws_json(admin, "ecs", "describe-task-definition", "--task-definition", name)["taskDefinition"]["revision"] == 2

    # The next start runs revision 2: the container has the task role's credentials.
    after = task_env(cloud, name)
    after["PATH"] = cli_path()
    assert after["AWS_CONTAINER_CREDENTIALS_FULL_URI"].startswith("http://127.0.0.1:")
    who = json.loads(out(run(after, AWS, "sts", "get-caller-identity")))
    assert ":assumed-role/wevox-batch-task/" in who["Arn"], who
    assert json.loads(out(keyway(after, "get", KEY_ARN_PREFIX)))["type"] == "service_account"

    # Passing a role is iam:PassRole: a user without it cannot register one.
    ogura = cli_env(cloud, "--aws-user", "ogura")
    r = aws_json(ogura, "ecs", "register-task-definition", "--family", name,
                 "--container-definitions", json.dumps(containers), ok=False)
    assert r.returncode != 0 and "ecs:RegisterTaskDefinition" in err(r), err(r)
