#!/usr/bin/env bash
# keyway's fuzz targets (fuzz/, cargo-fuzz + libFuzzer; see fuzz/README.md).
#
#   scripts/fuzz.sh build                  build every target (needs cargo-fuzz)
#   scripts/fuzz.sh smoke [SECONDS]        build, then run each target SECONDS
#                                          (default 20) from the committed corpus
#   scripts/fuzz.sh long [SECONDS] [T...]  run targets SECONDS each (default 600),
#                                          growing fuzz/work/T; prints the figures
#
# Runs on the stable toolchain: `--sanitizer none` (AddressSanitizer needs
# nightly's -Zsanitizer; the targets are safe Rust, so libFuzzer's coverage,
# debug assertions and overflow checks are what matter). Run it inside the
# loopback-only namespace (scripts/netns.sh): it builds offline. A crash, a
# failed property, a hang (-timeout) or a blow-up (-rss_limit_mb) fails it,
# and the input is left in fuzz/artifacts/TARGET/.
set -euo pipefail
cd "$(dirname "$0")/.."
TARGETS=(secret_ref world google_credentials aws_ini sigv4 condition)
BIN=fuzz/target/x86_64-unknown-linux-gnu/release

build() {
  if ! command -v cargo-fuzz >/dev/null 2>&1; then
    echo "error: cargo-fuzz is not installed (scripts/setup.sh installs it)" >&2
    exit 1
  fi
  # cargo fuzz has no --locked: check the committed lock file first.
  cargo metadata --locked --offline --format-version 1 --manifest-path fuzz/Cargo.toml >/dev/null
  CARGO_NET_OFFLINE=true cargo fuzz build --sanitizer none --fuzz-dir fuzz
}

# run TARGET SECONDS WORK_DIR
run() {
  local t=$1 secs=$2 work=$3 log
  mkdir -p "$work" "fuzz/artifacts/$t"
  log=$(mktemp)
  local start=$SECONDS
  if ! "$BIN/$t" "$work" "fuzz/corpus/$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
      -artifact_prefix="fuzz/artifacts/$t/" -print_final_stats=1 >"$log" 2>&1; then
    echo "FAILED: fuzz target $t" >&2
    grep -E -A12 "panicked|ERROR: libFuzzer|Test unit written" "$log" | head -40 >&2
    rm -f "$log"
    return 1
  fi
  local done_line runs
  done_line=$(grep -E "^#[0-9]+[[:space:]]+DONE" "$log" | tail -1 || true)
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  printf '%-20s %6ss %10s runs  %s\n' "$t" "$((SECONDS - start))" "$runs" \
    "$(echo "$done_line" | grep -oE 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+/[0-9A-Za-z]+')"
  rm -f "$log"
}

case "${1:-}" in
  build)
    build
    ;;
  smoke)
    secs=${2:-20}
    build
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    for t in "${TARGETS[@]}"; do run "$t" "$secs" "$tmp/$t"; done
    ;;
  long)
    secs=${2:-600}
    shift $(( $# > 1 ? 2 : 1 ))
    [ "$#" -gt 0 ] && TARGETS=("$@")
    for t in "${TARGETS[@]}"; do run "$t" "$secs" "fuzz/work/$t"; done
    ;;
  *)
    echo "usage: scripts/fuzz.sh build | smoke [SECONDS] | long [SECONDS] [TARGET...]" >&2
    exit 2
    ;;
esac
