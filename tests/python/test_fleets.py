"""The Fleets examples, checked: examples/ecs/task-definition.json and
examples/kubernetes/{sidecar,exec}.yaml are parsed, and keyway is started
with exactly the command line and environment they give it (paths under
/run/keyway and /etc/keyway mapped into a scratch directory, the credential
configuration being the one `keyway cloud cred-config` writes for seed 002),
inside seed 002's emulated Fargate task. The app container then runs with
the environment the example gives it, and an unmodified google-auth +
Secret Manager workload reads its secret through the broker; the readiness
check the example declares passes once keyway is ready."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import requests
import yaml

from broker_support import last_json, run
from conftest import KEYWAY_BIN, REPO, task_env
from test_broker import WORKLOAD
from test_seed002 import CONFIG, CONFIG_VALUE, SA, cred_config

WORLD = REPO / "examples" / "seed-002.toml"
EXAMPLES = REPO / "examples"


class Paths:
    """Maps the container paths of an example into `root`."""

    def __init__(self, root: Path, cred: str):
        self.root = root
        self.cred = cred
        (root / "run").mkdir()

    def __call__(self, v: str) -> str:
        if v.startswith("/etc/keyway/"):
            return self.cred
        return v.replace("/run/keyway", str(self.root / "run"))


def env_list(items) -> dict[str, str]:
    return {e["name"]: e["value"] for e in items or []}


def setup(start_cloud, tmp_path):
    cloud = start_cloud(WORLD)
    env = task_env(cloud, "rds-to-bigquery")
    cred = cred_config(cloud, env, "cred.json", "--aws", "--service-account", SA)
    return env, Paths(tmp_path, cred)


def sidecar(base: dict[str, str], args: list[str], sidecar_env: dict[str, str], paths: Paths, ready: list[str]):
    """Starts `keyway ARGS` as the example does; waits for its readiness check."""
    env = {**base, **{k: paths(v) for k, v in sidecar_env.items()}}
    log = paths.root / "keyway.stderr"
    with open(log, "wb") as err:
        proc = subprocess.Popen([str(KEYWAY_BIN), *[paths(a) for a in args]], stdout=subprocess.DEVNULL,
                                stderr=err, stdin=subprocess.DEVNULL, env=env)
    deadline = time.monotonic() + 20
    while subprocess.run([paths(a) for a in ready]).returncode != 0:
        assert proc.poll() is None, f"keyway exited {proc.returncode}:\n{log.read_text()}"
        assert time.monotonic() < deadline, f"the example's readiness check never passed:\n{log.read_text()}"
        time.sleep(0.1)
    return proc, log


def stop(proc) -> None:
    proc.terminate()
    assert proc.wait(timeout=15) == 0


def app_reads(base: dict[str, str], app_env: dict[str, str], paths: Paths) -> None:
    """The app container: its own environment plus what the example gives it."""
    env = {**base, **{k: paths(v) for k, v in app_env.items()}}
    env.pop("GOOGLE_APPLICATION_CREDENTIALS", None)
    r = run([sys.executable, "-c", WORKLOAD, CONFIG, "0", "", ""], env)
    assert r.returncode == 0, r.stderr[-3000:]
    out = last_json(r.stdout)
    assert out["errors"] == [] and out["values"] == [CONFIG_VALUE], out
    assert out["class"] == "google.auth.compute_engine.credentials.Credentials", out
    if "KEYWAY_SECRETS_URL" in env:
        token = Path(env["KEYWAY_SECRETS_TOKEN_FILE"]).read_text().strip()
        got = requests.get(f"{env['KEYWAY_SECRETS_URL']}/keyway/get",
                           params={"secretId": "sm://curucuru-logs/rds-to-bigquery-config"},
                           headers={"X-Aws-Parameters-Secrets-Token": token}, timeout=10)
        assert got.status_code == 200 and got.json()["SecretString"] == CONFIG_VALUE, got.text


def test_ecs_task_definition(start_cloud, tmp_path):
    td = json.loads((EXAMPLES / "ecs" / "task-definition.json").read_text())
    containers = {c["name"]: c for c in td["containerDefinitions"]}
    kw, app = containers["keyway"], containers["load-to-bigquery"]
    assert app["dependsOn"] == [{"containerName": "keyway", "condition": "HEALTHY"}]
    assert kw["healthCheck"]["command"][0] == "CMD"
    env, paths = setup(start_cloud, tmp_path)
    proc, log = sidecar(env, kw["command"], env_list(kw["environment"]), paths, kw["healthCheck"]["command"][1:])
    try:
        printed = (paths.root / "run" / "env").read_text()
        app_env = env_list(app["environment"])
        # What the task definition hard-codes is what keyway prints.
        for k, v in app_env.items():
            assert f"export {k}='{paths(v)}'" in printed, (k, printed)
        app_reads(env, app_env, paths)
    finally:
        stop(proc)
    assert CONFIG_VALUE not in log.read_text()


def test_kubernetes_sidecar(start_cloud, tmp_path):
    pod = yaml.safe_load((EXAMPLES / "kubernetes" / "sidecar.yaml").read_text())
    kw = pod["spec"]["initContainers"][0]
    app = pod["spec"]["containers"][0]
    assert kw["restartPolicy"] == "Always", "a native sidecar"
    env, paths = setup(start_cloud, tmp_path)
    proc, _ = sidecar(env, kw["args"], env_list(kw["env"]), paths, kw["startupProbe"]["exec"]["command"])
    try:
        printed = (paths.root / "run" / "env").read_text()
        app_env = env_list(app["env"])
        for k, v in app_env.items():
            assert f"export {k}='{paths(v)}'" in printed, (k, printed)
        app_reads(env, app_env, paths)
    finally:
        stop(proc)


def test_kubernetes_exec_job(start_cloud, tmp_path):
    job = yaml.safe_load((EXAMPLES / "kubernetes" / "exec.yaml").read_text())
    spec = job["spec"]["template"]["spec"]
    install = spec["initContainers"][0]["command"]
    c = spec["containers"][0]
    assert install[0] == "cp" and install[-1] == c["command"][0], "the app runs the keyway the init container copied"
    env, paths = setup(start_cloud, tmp_path)
    env = {**env, **{k: paths(v) for k, v in env_list(c["env"]).items()}}
    argv = c["command"]
    sep = argv.index("--")
    assert argv[sep + 1:] == ["python", "load_to_bigquery.py"]
    # The same keyway command line; the app is the test's workload, which also
    # checks the reference the Job resolves into CONFIG.
    app = 'import os\nassert os.environ["CONFIG"] == os.environ["EXPECTED"], "CONFIG"\n' + WORKLOAD
    r = run([str(KEYWAY_BIN), *argv[1:sep + 1], sys.executable, "-c", app, CONFIG, "0", "", ""],
            {**env, "EXPECTED": CONFIG_VALUE})
    assert r.returncode == 0, r.stderr[-3000:]
    out = last_json(r.stdout)
    assert out["errors"] == [] and out["values"] == [CONFIG_VALUE] and out["forbidden_env"] == [], out
