# Shared by the benchmark scripts (sourced, not run).

# parse: wrk --latency output on stdin -> "rps p50_ms p99_ms"; fails on any non-2xx answer.
parse() {
  python3 -c '
import re, sys
t = sys.stdin.read()
def ms(label):
    m = re.search(r"^\s*" + label + r"\s+([\d.]+)(us|ms|s)\s*$", t, re.M)
    v, u = float(m.group(1)), m.group(2)
    return v / 1000 if u == "us" else v * 1000 if u == "s" else v
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
errs = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", t)
if errs: sys.exit("non-2xx responses: " + errs.group(1))
p50, p99 = ms("50%"), ms("99%")
print(f"{rps:.0f} {p50:.3f} {p99:.3f}")'
}

# measure LABEL RUNS CMD... -> "LABEL median_ms p90_ms rss_median_kib rss_max_kib"
# Whole-process wall time and peak RSS (/usr/bin/time -f %M) over RUNS runs;
# the command must succeed once before it is timed.
measure() {
  local label=$1 runs=$2; shift 2
  "$@" >/dev/null 2>&1 || { echo "$label: the command failed:" >&2; "$@" >&2; exit 1; }
  python3 - "$label" "$runs" "$@" <<'PY'
import statistics, subprocess, sys, time
label, runs, cmd = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
walls, rss = [], []
for _ in range(runs):
    t = time.perf_counter()
    p = subprocess.run(["/usr/bin/time", "-f", "%M"] + cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    walls.append((time.perf_counter() - t) * 1000)
    if p.returncode != 0: sys.exit(f"{label}: exit {p.returncode}: {p.stderr[-500:]}")
    rss.append(int(p.stderr.strip().splitlines()[-1]))
walls.sort()
print(f"{label} {statistics.median(walls):.2f} {walls[max(0, int(len(walls)*0.9)-1)]:.2f} {statistics.median(rss)} {max(rss)}")
PY
}

# A scratch directory ($WORK) removed at exit, after every server whose PID is
# in PIDS is stopped and waited for. Call once, after sourcing this file.
scratch() {
  WORK=$(mktemp -d)
  PIDS=()
  trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; rm -rf "$WORK"' EXIT
}

# Waits (up to 20 s) until file $1 exists and is not empty.
wait_file() { for _ in $(seq 400); do [ -s "$1" ] && return 0; sleep 0.05; done; echo "timed out waiting for $1" >&2; return 1; }
