#!/usr/bin/env bash
# Runs every fuzz target (or the ones named) for SECONDS each, one after
# the other, and fails when any of them crashes, hangs or runs out of
# memory. Usage: fuzz/run.sh SECONDS [TARGET...]
#
# Needs the nightly toolchain and cargo-fuzz (`.ci/run` installs both).
# Each target starts from its seeds in corpus/TARGET and keeps what it
# finds in work/TARGET (not committed); a crash leaves its input in
# artifacts/TARGET/. Where `unshare -n` works (root), every target runs in
# a network namespace of its own, with loopback only.
# Prints one summary line per target: executions, coverage (edges and
# features), corpus size, outcome.
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:?usage: fuzz/run.sh SECONDS [TARGET...]}
shift
export CARGO_TARGET_DIR="$PWD/target"
flags=(--sanitizer none --debug-assertions)
cargo +nightly fuzz build "${flags[@]}"
if [ $# -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(cargo +nightly fuzz list)
fi
isolate=()
if unshare -n true 2>/dev/null; then
  isolate=(unshare -n sh -c 'ip link set lo up 2>/dev/null; exec "$@"' fuzz)
fi
bin="target/x86_64-unknown-linux-gnu/release"
failed=()
printf '%-22s %12s %8s %8s %8s  %s\n' target executions edges features corpus outcome
for target in "${targets[@]}"; do
  mkdir -p "work/$target" "artifacts/$target" logs
  log="logs/$target.log"
  status=0
  "${isolate[@]}" "$bin/$target" "work/$target" "corpus/$target" \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=8192 \
    -print_final_stats=1 -artifact_prefix="artifacts/$target/" >"$log" 2>&1 || status=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  done_line=$(grep -E '^#[0-9]+.*(DONE|pulse|NEW|REDUCE|INITED)' "$log" | tail -1 || true)
  edges=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$done_line")
  features=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$done_line")
  corpus=$(sed -n 's/.* corp: \([0-9]*\).*/\1/p' <<<"$done_line")
  outcome=ok
  if [ "$status" -ne 0 ]; then
    outcome="FAILED ($log, artifacts/$target/)"
    failed+=("$target")
  fi
  printf '%-22s %12s %8s %8s %8s  %s\n' "$target" "${execs:-?}" "${edges:-?}" "${features:-?}" "${corpus:-?}" "$outcome"
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: ${#failed[@]} target(s) failed: ${failed[*]}" >&2
  for target in "${failed[@]}"; do tail -40 "logs/$target.log" >&2; done
  exit 1
fi
echo "fuzz: ${#targets[@]} passed, 0 failed"
