#!/usr/bin/env bash
# Runs a command in a fresh network namespace that has only loopback, so a test,
# benchmark or demo that forgets an endpoint override fails loudly instead of
# reaching a real cloud (169.254.169.254, metadata.google.internal, *.googleapis.com).
#
#   scripts/netns.sh CMD [ARGS...]
set -euo pipefail
if [ "$#" -eq 0 ]; then
  echo "usage: scripts/netns.sh CMD [ARGS...]" >&2
  exit 2
fi
if [ "$(id -u)" = 0 ]; then
  flags=(-n)
else
  flags=(-r -n)   # an unprivileged user namespace owns the network namespace
fi
if ! unshare "${flags[@]}" true 2>/dev/null; then
  echo "error: cannot create a network namespace (unshare ${flags[*]} failed)." >&2
  echo "keyway's tests, benchmarks and demo only run isolated from the network; run as root or enable user namespaces." >&2
  exit 1
fi
exec unshare "${flags[@]}" sh -c 'ip link set lo up && exec "$@"' sh "$@"
