"""The broker's proof in the emulated Fargate task of seed 002: the official
Python google-auth + google-cloud-secret-manager and Node google-auth-library
(+ @google-cloud/secret-manager) read a Google secret keyless, with no
hand-exported variable and no credential file in their environment, under
`keyway exec --broker` and beside `keyway serve`, for several token lifetimes
(the world's tokens live 10 s) with no error at any refresh.

keyway itself is configured as in README's "Seed 002, keyless": the task's
environment (`keyway cloud env --task`) plus GOOGLE_APPLICATION_CREDENTIALS
naming the `external_account` configuration `keyway cloud cred-config --aws`
wrote. The workloads never see that file: the broker removes the variable and
gives them GCE_METADATA_HOST instead. (They do get the local cloud's Secret
Manager endpoint, CLOUDSDK_API_ENDPOINT_OVERRIDES_SECRETMANAGER, which a real
task would not need.)
"""

from __future__ import annotations

import sys
from pathlib import Path

from broker_support import NODE_DIR, last_json, node, run, secrets_in, start_serve
from conftest import CHILD_NETWORK_GUARD, KEYWAY_BIN, REPO, task_env
from test_seed002 import CONFIG, CONFIG_VALUE, SA, cred_config

LIFETIME = 10
DURATION = 3 * LIFETIME + 3

WORKLOAD = CHILD_NETWORK_GUARD + r"""
import json, os, subprocess, sys, time
name, duration, node = sys.argv[1], float(sys.argv[2]), sys.argv[3]
node_proc = None
if node:
    node_proc = subprocess.Popen([node, os.path.join(sys.argv[4], "google_read.mjs"), name, str(int(duration))],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
import google.auth
from google.cloud import secretmanager
out = {"errors": [], "forbidden_env": [k for k in ("GOOGLE_APPLICATION_CREDENTIALS", "AWS_ACCESS_KEY_ID",
       "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE") if k in os.environ]}
creds, project = google.auth.default()
out["class"] = type(creds).__module__ + "." + type(creds).__name__
out["project"] = project
client = secretmanager.SecretManagerServiceClient(
    transport="rest", credentials=creds,
    client_options={"api_endpoint": os.environ["CLOUDSDK_API_ENDPOINT_OVERRIDES_SECRETMANAGER"].rstrip("/")})
tokens, values, reads, start = set(), set(), 0, time.time()
while True:
    try:
        values.add(client.access_secret_version(name=name).payload.data.decode())
        reads += 1
        tokens.add(creds.token)
    except Exception as e:
        out["errors"].append(repr(e))
    if time.time() - start >= duration:
        break
    time.sleep(0.7)
out.update(reads=reads, distinct_tokens=len(tokens), values=sorted(values),
           email=getattr(creds, "service_account_email", None))
if node_proc:
    so, se = node_proc.communicate(timeout=120)
    lines = [l for l in so.splitlines() if l.startswith("{")]
    out["node"] = json.loads(lines[-1]) if lines else {"errors": ["node printed nothing: " + se[-2000:]]}
print(json.dumps(out))
"""


def short_lived_world(tmp: Path) -> Path:
    """Seed 002 with every token living LIFETIME seconds."""
    w = tmp / "seed-002-short.toml"
    w.write_text(f"[settings]\ntoken_lifetime_secs = {LIFETIME}\n\n" + (REPO / "examples" / "seed-002.toml").read_text())
    return w


def keyway_env(start_cloud, tmp: Path) -> dict[str, str]:
    cloud = start_cloud(short_lived_world(tmp))
    env = task_env(cloud, "rds-to-bigquery")
    env["GOOGLE_APPLICATION_CREDENTIALS"] = cred_config(cloud, env, "cred.json", "--aws", "--service-account", SA)
    env["KEYWAY_LOG"] = "trace"
    return env


def check(out: dict) -> None:
    assert out["forbidden_env"] == [], out
    assert out["errors"] == [], out
    assert out["class"] == "google.auth.compute_engine.credentials.Credentials", out
    assert out["project"] == "curucuru-logs", out
    assert out["email"] == SA, out
    assert out["values"] == [CONFIG_VALUE], out
    assert out["distinct_tokens"] >= 3, f"tokens were not refreshed across lifetimes: {out}"
    n = out["node"]
    assert n["forbidden_env"] == [] and n["errors"] == [], n
    assert n["client"] == "Compute", n
    assert n["project"] == "curucuru-logs", n
    assert n["values"] == [CONFIG_VALUE], n
    assert n["reads"] >= 10 and n["gax_reads"] >= 10, n
    assert n["distinct_tokens"] >= 3, f"Node's tokens were not refreshed: {n}"


def test_exec_broker_python_and_node_read_keyless_across_token_lifetimes(start_cloud, tmp_path):
    env = keyway_env(start_cloud, tmp_path)
    r = run([str(KEYWAY_BIN), "exec", "--broker", "--", sys.executable, "-c", WORKLOAD,
             CONFIG, str(DURATION), node(), str(NODE_DIR)], env)
    assert r.returncode == 0, r.stderr[-4000:]
    check(last_json(r.stdout))
    assert secrets_in(r.stderr, CONFIG_VALUE) == [], "keyway logged a secret at trace level"


def test_serve_python_and_node_read_keyless_across_token_lifetimes(start_cloud, tmp_path):
    env = keyway_env(start_cloud, tmp_path)
    serve = start_serve(env, tmp_path, "--apis", "gce")
    try:
        assert "GOOGLE_APPLICATION_CREDENTIALS" in serve.unset
        assert serve.exports["GCE_METADATA_HOST"].startswith("127.0.0.1:")
        assert serve.exports["GCE_METADATA_IP"] == serve.exports["GCE_METADATA_HOST"]
        # The containers beside the sidecar: the task's environment, with the sidecar's variables.
        child = serve.child_env(task_env_of(env))
        r = run([sys.executable, "-c", WORKLOAD, CONFIG, str(DURATION), node(), str(NODE_DIR)], child)
        assert r.returncode == 0, r.stderr[-4000:]
        check(last_json(r.stdout))
    finally:
        log = serve.stop()
    assert serve.proc.returncode == 0, log
    assert secrets_in(log, CONFIG_VALUE) == [], "keyway serve logged a secret at trace level"
    assert "broker ready" in log, log


def task_env_of(keyway_env: dict[str, str]) -> dict[str, str]:
    """What another container of the task sees: the task's env without keyway's own settings."""
    env = dict(keyway_env)
    for k in ("GOOGLE_APPLICATION_CREDENTIALS", "KEYWAY_LOG"):
        env.pop(k, None)
    return env
