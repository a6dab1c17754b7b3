# shellcheck shell=bash disable=SC2034  # KILN, DAG_RUN, B3 are for the sourcing script
# Shared by the bench/engine scripts (sourced, not run).
# Builds kiln and the bench driver optimized, in the output base
# $KILN_BENCH_OUTPUT_BASE (default $HOME/.cache/kiln/ob-bench), and sets
# KILN (the kiln binary) and DAG_RUN (bench/engine:dag_run); with the
# argument b3 also B3 (bench/sandbox:b3, the one-sandbox benchmark).

OUTPUT_BASE="${KILN_BENCH_OUTPUT_BASE:-$HOME/.cache/kiln/ob-bench}"

# build_kiln DIR [b3]: the build's log goes to DIR/build.log.
build_kiln() {
  local extra=()
  [[ ${2:-} == b3 ]] && extra=(//bench/sandbox:b3)
  if ! bazel --output_base="$OUTPUT_BASE" build -c opt //:kiln \
    //bench/engine:dag_run "${extra[@]}" >"$1/build.log" 2>&1; then
    tail -30 "$1/build.log" >&2
    echo "bench/engine: build failed" >&2
    return 1
  fi
  local bin
  bin="$(bazel --output_base="$OUTPUT_BASE" info -c opt bazel-bin 2>/dev/null)"
  KILN="$bin/kiln"
  DAG_RUN="$bin/bench/engine/dag_run"
  ((${#extra[@]} == 0)) || B3="$bin/bench/sandbox/b3"
}

# Ends the Bazel server of this output base (CI leaves no daemon behind).
stop_bazel() {
  bazel --output_base="$OUTPUT_BASE" shutdown >/dev/null 2>&1 || true
}

now_ns() { date +%s%N; }

# seconds_since START_NS -> seconds with 4 decimals
seconds_since() { awk -v s="$1" -v e="$(now_ns)" 'BEGIN{printf "%.4f", (e-s)/1e9}'; }

median() { sort -g | awk '{a[NR]=$1} END {if (NR) print a[int((NR+1)/2)]}'; }

# cpu_s TIME_V_FILE -> user + system seconds of /usr/bin/time -v (the process
# and the children it waited for; kernel threads' work is not counted)
cpu_s() {
  awk -F: '/User time|System time/ {s += $2} END {printf "%.2f", s}' "$1"
}

# max_rss_mb TIME_V_FILE -> the "Maximum resident set size" of /usr/bin/time -v, in MB
max_rss_mb() {
  awk -F: '/Maximum resident set size/ {gsub(/ /,"",$2); printf "%.1f", $2/1024}' "$1"
}
