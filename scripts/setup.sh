#!/usr/bin/env bash
# Installs what keyway's tests need on a fresh machine (needs the package
# registries; everything after this runs offline):
#   - the Rust dependencies, built (cargo build --workspace --all-targets --locked)
#   - a Python virtual environment in .venv with the pinned official Google and
#     AWS client libraries the tests run against keyway's local cloud
#   - the Node project in tests/node (official Google and AWS Node clients), npm ci
#   - iproute2 (for `ip` inside the loopback-only namespace) if missing
#   - cargo-fuzz, and the fuzz targets' dependencies (fuzz/Cargo.lock)
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v ip >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && apt-get install -y -qq iproute2 >/dev/null
  else
    echo "error: the 'ip' command (iproute2) is required" >&2; exit 1
  fi
fi

echo "==> building (cargo build --workspace --all-targets --locked)"
cargo build --workspace --all-targets --locked --quiet

echo "==> cargo-fuzz and the fuzz targets' dependencies (fuzz/)"
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  cargo install cargo-fuzz --version 0.13.2 --locked --quiet
fi
cargo fetch --locked --quiet --manifest-path fuzz/Cargo.toml

echo "==> python environment (.venv, tests/python/requirements.txt)"
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
stamp=.venv/.requirements.sha256
want=$(sha256sum tests/python/requirements.txt | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  .venv/bin/pip install --quiet --disable-pip-version-check -r tests/python/requirements.txt
  echo "$want" > "$stamp"
fi

echo "==> node clients (tests/node, npm ci from package-lock.json)"
if ! command -v npm >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && apt-get install -y -qq nodejs npm >/dev/null
  else
    echo "error: node and npm are required for the broker's Node client tests" >&2; exit 1
  fi
fi
stamp=tests/node/node_modules/.package-lock.sha256
want=$(sha256sum tests/node/package-lock.json | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  (cd tests/node && npm ci --no-audit --no-fund --loglevel=error)
  echo "$want" > "$stamp"
fi

# tests/python/test_cli_fixes.py runs the fixes keyway prints with the real CLIs.
for cli in gcloud aws; do
  command -v "$cli" >/dev/null 2>&1 ||
    echo "warning: '$cli' is not installed: tests/python/test_cli_fixes.py will fail (it needs the Google Cloud CLI and aws-cli v1)" >&2
done
