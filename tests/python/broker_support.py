"""Helpers for the broker tests: running `keyway exec --broker` and `keyway
serve` around unmodified workloads (Python and Node), reading what `serve`
prints, and finding the Node project (tests/node, installed by
scripts/setup.sh with `npm ci`)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from conftest import KEYWAY_BIN, REPO, parse_env_lines

NODE_DIR = REPO / "tests" / "node"


def node() -> str:
    """The node binary; the Node project must be installed (scripts/setup.sh)."""
    exe = shutil.which("node")
    assert exe, "node is not installed: the broker's Node proofs need it (scripts/setup.sh)"
    assert (NODE_DIR / "node_modules" / "google-auth-library").is_dir(), (
        "tests/node is not installed: run `npm ci` in tests/node (scripts/setup.sh does)"
    )
    return exe


def last_json(text: str) -> dict:
    lines = [l for l in text.splitlines() if l.strip().startswith("{")]
    assert lines, f"no JSON line in:\n{text}"
    return json.loads(lines[-1])


class Serve:
    """A running `keyway serve`: its printed variables and its stderr."""

    def __init__(self, proc: subprocess.Popen, env_file: Path, log: Path):
        self.proc = proc
        self.env_file = env_file
        self.log = log
        deadline = time.monotonic() + 20
        while not env_file.exists():
            if proc.poll() is not None:
                raise AssertionError(f"keyway serve exited {proc.returncode}:\n{log.read_text()}")
            assert time.monotonic() < deadline, f"keyway serve wrote no env file:\n{log.read_text()}"
            time.sleep(0.05)
        self.exports, self.unset = parse_env_lines(env_file.read_text())

    def child_env(self, base: dict[str, str]) -> dict[str, str]:
        """What a container beside the sidecar gets: `. ENV_FILE` on top of its own env."""
        env = dict(base)
        for k in self.unset:
            env.pop(k, None)
        env.update(self.exports)
        return env

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.log.read_text(errors="replace")


def start_serve(env: dict[str, str], workdir: Path, *args: str) -> Serve:
    env_file = workdir / "broker.env"
    log = workdir / "serve.stderr"
    with open(log, "wb") as err:
        proc = subprocess.Popen(
            [str(KEYWAY_BIN), "serve", "--env-file", str(env_file), *args],
            stdout=subprocess.DEVNULL, stderr=err, stdin=subprocess.DEVNULL, env=env,
        )
    return Serve(proc, env_file, log)


def run(argv: list[str], env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env, cwd=str(REPO))


def secrets_in(text: str, *values: str) -> list[str]:
    """Which of `values` (and bearer tokens) appear in `text`."""
    found = [v for v in values if v and v in text]
    if "ya29." in text:
        found.append("ya29.")
    return found


__all__ = ["NODE_DIR", "Serve", "last_json", "node", "run", "secrets_in", "start_serve", "os"]
