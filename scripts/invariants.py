#!/usr/bin/env python3
"""Checks ARCHITECTURE.md's invariants that a command can check (test.sh runs it).

Each check reads the code the way a reviewer would: library code only (a file's
`#[cfg(test)]` tail, `tests.rs` files and `tests/` directories are test code and
exempt), and prints every violation with its file and line. Exit 1 on any.

  python3 scripts/invariants.py
"""

import json
import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
CRATES = ROOT / "crates"


def library_lines(crate):
    """(path, line number, text) of every non-test line under crates/CRATE/src."""
    src = CRATES / crate / "src"
    for path in sorted(src.rglob("*.rs")):
        if path.name == "tests.rs" or "tests" in path.relative_to(src).parts[:-1]:
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if line.strip().startswith("#[cfg(test)]"):
                break
            if line.lstrip().startswith("//"):
                continue
            yield path.relative_to(ROOT), n, line


def crate_dirs():
    """The crates that ship (testkit is a dev-dependency: test code through and through)."""
    return sorted(
        p.name for p in CRATES.iterdir() if (p / "Cargo.toml").exists() and p.name != "testkit"
    )


violations = []


def fail(rule, where, text):
    violations.append(f"{where}: {rule}\n    {text.strip()}")


# 1. The crate graph: `cloud` never depends on `auth` or `secrets` (the local
#    cloud must not share a client's bugs); `core` and `wire` depend on no other
#    keyway crate but each other.
meta = json.loads(
    subprocess.run(
        ["cargo", "metadata", "--offline", "--format-version", "1", "--no-deps"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
)
deps = {
    p["name"]: {d["name"] for d in p["dependencies"] if d.get("kind") is None}
    for p in meta["packages"]
}
for bad in ("keyway-auth", "keyway-secrets"):
    if bad in deps.get("keyway-cloud", set()):
        fail("keyway-cloud depends on " + bad, "crates/cloud/Cargo.toml", bad)
for base in ("keyway-core", "keyway-wire"):
    own = {d for d in deps.get(base, set()) if d.startswith("keyway-")}
    if own - {"keyway-core", "keyway-wire"}:
        fail(f"{base} depends on another keyway crate", base, ", ".join(sorted(own)))

# 2. Library crates never read the process environment: the binary captures
#    `Env` once (core's `Env::from_process`, called by main alone).
READS_ENV = re.compile(r"std::env::(var|vars|var_os|vars_os|temp_dir|home_dir)\b|\benv::var(_os)?\(")
for crate in crate_dirs():
    for path, n, line in library_lines(crate):
        if READS_ENV.search(line) and not (str(path) == "crates/core/src/env.rs"):
            fail("reads the process environment (take an Env)", f"{path}:{n}", line)
FROM_PROCESS = re.compile(r"Env::from_process\(\)")
for crate in crate_dirs():
    for path, n, line in library_lines(crate):
        if FROM_PROCESS.search(line) and str(path) != "crates/keyway/src/main.rs":
            fail("captures the environment outside main", f"{path}:{n}", line)

# 3. Every environment variable keyway reads is named in core/src/vars.rs: no
#    string literal as the name in a lookup.
LITERAL_LOOKUP = re.compile(r"\.(get|non_empty|flag)\(\s*\"([A-Z][A-Z0-9_]*)\"\s*\)")
PLAIN_NAMES = {"HOME", "PATH", "TERM", "TMPDIR", "USER", "SHELL", "LANG"}


def env_name(name):
    """A variable's shape (A_B, or a plain Unix name), not a JSON key like "AWS"."""
    return "_" in name or name in PLAIN_NAMES


for crate in crate_dirs():
    for path, n, line in library_lines(crate):
        m = LITERAL_LOOKUP.search(line)
        if m and env_name(m.group(2)):
            fail("an environment variable named by a literal (use keyway_core::vars)", f"{path}:{n}", line)

# 4. `core` and `wire` do no IO and never read the clock, except the real
#    implementations behind core's seams (SystemClock, RealFs, Env::from_process),
#    which only entry points construct.
IO_OR_CLOCK = re.compile(
    r"std::fs\b|std::net::(TcpStream|TcpListener|UdpSocket)|std::process\b|SystemTime::now|Instant::now|tokio::|File::open|read_to_string\("
)
SEAMS = {"crates/core/src/clock.rs", "crates/core/src/fs.rs", "crates/core/src/env.rs"}
for crate in ("core", "wire"):
    for path, n, line in library_lines(crate):
        if IO_OR_CLOCK.search(line) and str(path) not in SEAMS:
            fail("IO or the clock in core/wire", f"{path}:{n}", line)
ENTRY_POINTS = ("crates/keyway/src/",)
for crate in crate_dirs():
    if crate == "core":
        continue
    for path, n, line in library_lines(crate):
        if re.search(r"Arc::new\((SystemClock|RealFs)\)|=\s*(SystemClock|RealFs)\b", line) and not str(
            path
        ).startswith(ENTRY_POINTS):
            fail("a library constructs a real seam (take it as a parameter)", f"{path}:{n}", line)

# 5. Every listening socket binds loopback: listeners are made by keyway-serve
#    from a LoopbackAddr, nowhere else.
BIND = re.compile(r"TcpListener::bind|UdpSocket::bind|TcpSocket::new")
for crate in crate_dirs():
    for path, n, line in library_lines(crate):
        if BIND.search(line) and not str(path).startswith("crates/serve/src/"):
            fail("a socket bound outside keyway-serve", f"{path}:{n}", line)

# 6. Decisions and diagnoses are matches on typed errors, never on the text of
#    a message: no library code tests what an error's Display, a message or a
#    reason says.
TEXT_MATCH = re.compile(
    r"(to_string\(\)|\bmessage|\breason|\bmsg|\berror)\s*\.\s*(contains|starts_with|ends_with|find)\(|"
    r"format!\(\s*\"\{[a-z_]*:?#?\}\"\s*,\s*[a-z_]+\s*\)\s*\.\s*contains\("
)
for crate in crate_dirs():
    if crate == "cloud":
        continue  # the local cloud parses requests, not errors; its texts are its own answers
    for path, n, line in library_lines(crate):
        if TEXT_MATCH.search(line) and "invariant-exempt:" not in line:
            fail("a decision made on the text of a message (match the typed error)", f"{path}:{n}", line)

if violations:
    print(f"{len(violations)} invariant violation(s) (ARCHITECTURE.md, Invariants):")
    for v in violations:
        print("  " + v)
    sys.exit(1)
print("invariants hold: crate graph, environment read once, variables registered, "
      "core/wire without IO or clock, real seams built by entry points, loopback listeners, "
      "no decision on a message's text")
