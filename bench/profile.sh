#!/usr/bin/env bash
# bench/profile.sh: where pacer's CPU time goes under load, with perf.
#
# Run by hand, as root, on Debian (not in CI):
#
#   sudo bench/profile.sh            # pacer under the `http` load, 64 conns
#   sudo bench/profile.sh connect    # or: socks5, or connect/socks5 with BULK=1
#
# It uses compare.sh's setup (packages, release build, nginx origin, pacer
# with bench/peers/pacer.toml), runs the load generator against pacer and
# records pacer alone with `perf record`; the flat profile (self time by
# shared object and symbol) goes to OUT/profile.txt and is printed. It stops
# only the processes it started.
#
# Settings: PROFILE_SECONDS=10, CONNS=64, BULK= (1: 1 MiB per request),
# KEEP= (1: connect/socks5 keep one tunnel per connection), FREQ=499
# (samples/s), plus compare.sh's CARGO, CARGO_JOBS, OUT.
set -euo pipefail
# shellcheck source=bench/compare.sh
source "$(dirname "${BASH_SOURCE[0]}")/compare.sh"

PROFILE_MODE=${1:-http}
PROFILE_SECONDS=${PROFILE_SECONDS:-10}
CONNS=${CONNS:-64}
BULK=${BULK:-}
KEEP=${KEEP:-}
FREQ=${FREQ:-499}

profile_args() {
  local path=/small extra=""
  [[ -n $BULK ]] && path=/1m extra=--bulk
  [[ -n $KEEP && $PROFILE_MODE != http ]] && extra+=" --keep-tunnel"
  case $PROFILE_MODE in
    http) echo "http --proxy 127.0.0.1:$PACER_HTTP_PORT --auth $AUTH --target http://127.0.0.1:$ORIGIN_PORT$path $extra" ;;
    connect) echo "connect --proxy 127.0.0.1:$PACER_HTTP_PORT --auth $AUTH --target http://127.0.0.1:$ORIGIN_PORT$path $extra" ;;
    socks5) echo "socks5 --proxy 127.0.0.1:$PACER_SOCKS_PORT --auth $AUTH --target http://127.0.0.1:$ORIGIN_PORT$path $extra" ;;
    *) die "mode must be http, connect or socks5" ;;
  esac
}

profile_main() {
  require_root_debian
  command -v perf >/dev/null || {
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq linux-perf >/dev/null
  }
  install_missing
  build
  raise_fd_limit
  mkdir -p "$RUN"
  prepare_run_folder
  start direct
  start pacer
  local lg
  # shellcheck disable=SC2046
  "$LOADGEN" $(profile_args) -c "$CONNS" --warmup 1s --duration "$((PROFILE_SECONDS + 2))s" \
    >"$OUT/profile-load.txt" 2>&1 &
  lg=$!
  track "$lg"
  sleep 1
  log "recording pacer (PID ${PID[pacer]}) for ${PROFILE_SECONDS}s under '$PROFILE_MODE' load"
  perf record -F "$FREQ" -g -p "${PID[pacer]}" -o "$OUT/perf.data" -- sleep "$PROFILE_SECONDS" \
    2>>"$OUT/perf.err"
  reap "$lg"
  cat "$OUT/profile-load.txt"
  report "$OUT/perf.data" | tee "$OUT/profile.txt"
}

# The flat profile: self time by shared object, then by symbol.
report() {
  local data=$1
  echo "== self time by shared object"
  perf report -i "$data" --no-children --sort dso --stdio -g none 2>/dev/null |
    grep -v -e '^#' -e '^$' | sed -n 1,12p || true
  echo "== self time by symbol (top 40)"
  perf report -i "$data" --no-children --sort dso,symbol --stdio -g none 2>/dev/null |
    grep -v -e '^#' -e '^$' | sed -n 1,40p || true
}

profile_main "$@"
