"""The peer of crates/auth/benches/federation.rs: the official google-auth
library doing the same Workload Identity Federation exchange (aws1 subject
token -> STS -> IAM Credentials generateAccessToken) with the same credential
configuration, against the same local cloud, in process.

google-auth cannot read ECS container credentials, so it gets the task role's
credentials as AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN
(and AWS_REGION), which is what users of it on ECS do by hand.
bench/federation.sh sets them up; run that, not this file.

Cases, printed as `RESULT {json}` lines like the Rust bench's:
  cold_new_conn  read the file, new aws.Credentials, refresh() over a new
                 requests.Session (new connections), session made outside the timer
  cold_pooled    the same over one shared session (kept-alive connections)
  cached         before_request() on one refreshed credentials object: the
                 validity check and header that google-auth's transports run
                 before every request
  cached_attr    reading the .token attribute (no validity check), as the mean
                 of a tight loop (a per-call timer would cost more than the read)
"""

import argparse
import base64
import json
import statistics
import time

import google.auth.aws
import google.auth.transport.requests
import requests

CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"
SECRET_VALUE = b"federated-bench-secret-value"
WARMUP = 20


def load(path):
    with open(path) as f:
        info = json.load(f)
    return google.auth.aws.Credentials.from_info(info, scopes=[CLOUD_PLATFORM])


def cold_once(path, request):
    t0 = time.perf_counter_ns()
    creds = load(path)
    creds.refresh(request)
    t1 = time.perf_counter_ns()
    assert creds.token, "empty token"
    return t1 - t0, creds


def report(case, ns, n=None):
    us = sorted(x / 1000 for x in ns)
    n = n or len(us)
    median = statistics.median(us)
    p99 = us[max(1, -(-len(us) * 99 // 100)) - 1]
    mean = statistics.fmean(us)
    print("RESULT " + json.dumps({"impl": "google-auth", "case": case, "n": n, "median_us": median, "p99_us": p99, "mean_us": mean}))
    print(f"  google-auth {case:<17} n={n:<7} median {median:>10.2f} µs   p99 {p99:>10.2f} µs   mean {mean:>10.2f} µs")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", required=True, help="the external_account credential configuration")
    ap.add_argument("--google", required=True, help="the local cloud's Google base URL (to check the token reads the secret)")
    ap.add_argument("--cold", type=int, default=300)
    ap.add_argument("--cached", type=int, default=100000)
    a = ap.parse_args()
    if not a.google.startswith(("http://127.0.0.1:", "http://localhost:")):
        raise SystemExit(f"refusing: {a.google} is not a loopback endpoint")

    pooled = google.auth.transport.requests.Request()
    _, creds = cold_once(a.config, pooled)
    r = requests.get(
        f"{a.google}/v1/projects/fedbench-proj/secrets/bench-secret/versions/latest:access",
        headers={"Authorization": "Bearer " + creds.token},
        timeout=5,
    )
    r.raise_for_status()
    assert base64.b64decode(r.json()["payload"]["data"]) == SECRET_VALUE, "the federated token read the wrong secret value"

    for case in ("cold_new_conn", "cold_pooled"):
        samples = []
        for i in range(WARMUP + a.cold):
            if case == "cold_new_conn":
                session = requests.Session()
                request = google.auth.transport.requests.Request(session=session)
            else:
                session, request = None, pooled
            ns, _ = cold_once(a.config, request)
            if session is not None:
                session.close()
            if i >= WARMUP:
                samples.append(ns)
        report(case, samples)

    _, creds = cold_once(a.config, pooled)
    url = f"{a.google}/v1/projects/fedbench-proj/secrets/bench-secret/versions/latest:access"
    for _ in range(1000):
        creds.before_request(pooled, "GET", url, {})
    samples = []
    clock = time.perf_counter_ns
    for _ in range(a.cached):
        headers = {}
        t = clock()
        creds.before_request(pooled, "GET", url, headers)
        samples.append(clock() - t)
    assert headers["authorization"] == "Bearer " + creds.token
    report("cached", samples)

    t = clock()
    for _ in range(a.cached):
        creds.token
    per = (clock() - t) / a.cached
    report("cached_attr", [per], n=a.cached)


if __name__ == "__main__":
    main()
