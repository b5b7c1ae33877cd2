#!/usr/bin/env bash
# Runs every keyway test on a fresh machine: installs what the tests need
# (scripts/setup.sh), then runs the Rust tests and the official-client tests
# inside a loopback-only network namespace (scripts/netns.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export KEYWAY_BIN="$PWD/target/debug/keyway"
echo "==> cargo fmt --check, cargo clippy -D warnings, ARCHITECTURE.md's invariants"
cargo fmt --all --check
cargo clippy --workspace --all-targets --offline --locked --quiet -- -D warnings
python3 scripts/invariants.py
echo "==> cargo test (offline, loopback-only network)"
bash scripts/netns.sh cargo test --workspace --offline --locked --quiet
echo "==> official client libraries against the local cloud (loopback-only network)"
bash scripts/netns.sh .venv/bin/python -m pytest -q -p no:cacheprovider tests/python
echo "==> fuzz targets: build, then 20 s each from the committed corpus (loopback-only network)"
bash scripts/netns.sh bash scripts/fuzz.sh smoke 20
