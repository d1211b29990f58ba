#!/usr/bin/env bash
# bench/compare.sh: pacer beside the established proxies, in one run.
#
# Run by hand, as root, on a Debian machine (not in CI):
#
#   sudo bench/compare.sh                       # full run (~10 s per figure, 3 rounds)
#   DURATION=3 ROUNDS=1 sudo bench/compare.sh   # smoke run
#
# It installs what is missing (nginx, squid, tinyproxy, privoxy,
# dante-server, microsocks, haproxy, jq) with apt-get, without letting apt
# start their services; builds pacer and the load generator in release;
# starts an nginx origin (/small ~100 B, /1m 1 MiB) and every proxy on
# loopback with the minimal configs in bench/peers/ on fixed high ports;
# then measures each figure for each proxy, round-robin over the proxies,
# ROUNDS times, and prints one markdown table of medians with a ratio
# against the origin reached directly (the ceiling), then the summary of
# issue 16 (pacer beside g3proxy and direct). g3proxy (built from its
# source, see BENCHMARKS.md) joins when G3PROXY names its binary; HAProxy
# in TCP mode, copying and splicing, is the reference relay in the 1 MiB
# figures. On exit it stops only the processes it started (their PIDs and
# their children), never anything else.
#
# Settings (environment):
#   DURATION=10     measured seconds per run        WARMUP=1   unmeasured seconds before
#   ROUNDS=3        rounds per figure (median)      BULK_CONNS=8  connections for 1 MiB figures
#   IDLE_CONNS=10000  idle keep-alive connections   IDLE_HOLD=30  seconds the idle hold may last
#   IDLE_SETTLE=5   seconds of idleness before the idle memory is read
#   IDLE_ROUNDS=1   rounds of each idle-memory figure (median)
#   ONLY=           figure ids to measure, e.g. "http_1m idle_http" (default:
#                   all; the ids are the first field of FIGURES, plus
#                   idle_http, idle_connect and idle_socks)
#   PROXIES="pacer squid tinyproxy privoxy dante microsocks g3proxy haproxy"  (a subset is fine)
#   G3PROXY=        the g3proxy binary (without it g3proxy is left out)
#   PACER_LOG=info  RUST_LOG for pacer (info: the access log on, as shipped; warn: off)
#   PACER_LOG_FILE=/dev/null  where pacer's log goes (a file grows by GBs at info)
#   PACER_BASE_BIN= a second pacer binary measured beside the first, as
#                   `pacer-base` (a before/after pair in one run)
#   PACER_BASE_LOG= RUST_LOG for pacer-base (default: PACER_LOG; `warn`
#                   beside the same binary measures what the access log costs)
#   PACER_BASE_SERVER=  extra [server] lines for pacer-base only (e.g.
#                   "splice_pipes = 0": the same binary without splice)
#   CARGO=cargo     CARGO_JOBS=     (e.g. 1 on a shared machine)
#   PACER_BIN=      the pacer binary to measure (default: the one built
#                   here; point it at another build to compare two commits)
#   LOADGEN=        a built load generator; with it nothing is built (give
#                   PACER_BIN too)
#   OUT=            results folder (default: a new /tmp/pacer-bench.XXXXXX)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PEERS_DIR=$ROOT/bench/peers
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-1}
ROUNDS=${ROUNDS:-3}
BULK_CONNS=${BULK_CONNS:-8}
IDLE_CONNS=${IDLE_CONNS:-10000}
IDLE_HOLD=${IDLE_HOLD:-30}
IDLE_SETTLE=${IDLE_SETTLE:-5}
IDLE_ROUNDS=${IDLE_ROUNDS:-1}
ONLY=${ONLY:-}
PROXIES=${PROXIES:-"pacer squid tinyproxy privoxy dante microsocks g3proxy haproxy"}
G3PROXY=${G3PROXY:-}
PACER_LOG=${PACER_LOG:-info}
PACER_LOG_FILE=${PACER_LOG_FILE:-/dev/null}
PACER_BASE_BIN=${PACER_BASE_BIN:-}
PACER_BASE_SERVER=${PACER_BASE_SERVER:-}
PACER_BASE_LOG=${PACER_BASE_LOG:-$PACER_LOG}
CARGO=${CARGO:-cargo}
CARGO_JOBS=${CARGO_JOBS:-}
PACER_BIN=${PACER_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/pacer}
OUT=${OUT:-$(mktemp -d /tmp/pacer-bench.XXXXXX)}
RUN=$OUT/run
RESULTS=$OUT/results.tsv
AUTH=demo:demo

# Fixed loopback ports, high and unlikely to be taken.
ORIGIN_PORT=18000
PACER_HTTP_PORT=18080
PACER_SOCKS_PORT=18081
PACER_ADMIN_PORT=18090
SQUID_PORT=18128
TINYPROXY_PORT=18888
PRIVOXY_PORT=18118
DANTE_PORT=18180
MICROSOCKS_PORT=18181
G3_HTTP_PORT=18380
G3_SOCKS_PORT=18381
HAPROXY_PORT=18190
HAPROXY_SPLICE_PORT=18191
PACER_BASE_HTTP_PORT=18082
PACER_BASE_SOCKS_PORT=18083
PACER_BASE_ADMIN_PORT=18093

HTTP_PEERS="squid tinyproxy privoxy g3proxy"
SOCKS_PEERS="dante microsocks g3proxy"
# Plain port forwards to the origin: the reference in the 1 MiB figures.
RELAYS="haproxy haproxy-splice"

declare -A PID=()          # name -> PID of a server this script started
declare -A LIVE=()         # every PID this script started and has not reaped
LOADGEN=${LOADGEN:-}
NOFILE=0
IDLE_TUNNELS=0

log() { printf '[compare %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ---------------------------------------------------------------- cleanup

# PID and every descendant of it.
tree_pids() {
  local root=$1
  [[ -d /proc/$root ]] || return 0
  ps -e -o pid=,ppid= | awk -v root="$root" '
    { parent[$1] = $2; pids[NR] = $1 }
    END {
      keep[root] = 1; changed = 1
      while (changed) {
        changed = 0
        for (i in pids) { p = pids[i]; if (!(p in keep) && (parent[p] in keep)) { keep[p] = 1; changed = 1 } }
      }
      for (p in keep) print p
    }'
}

# Stops the given started PIDs and their children: TERM, then KILL after 5 s.
stop_pids() {
  local all=() p
  for p in "$@"; do
    # shellcheck disable=SC2207
    all+=($(tree_pids "$p"))
  done
  ((${#all[@]})) || return 0
  kill -TERM "${all[@]}" 2>/dev/null || true
  for _ in $(seq 50); do
    local alive=0
    for p in "${all[@]}"; do [[ -d /proc/$p ]] && alive=1; done
    ((alive)) || return 0
    sleep 0.1
  done
  kill -KILL "${all[@]}" 2>/dev/null || true
}

# A PID is tracked from its start until it is reaped, so that cleanup never
# signals a PID that the system may have handed to someone else.
track() { LIVE[$1]=1; }
reap() {
  wait "$1" 2>/dev/null || true
  unset "LIVE[$1]"
}

cleanup() {
  local status=$?
  ((${#LIVE[@]})) && stop_pids "${!LIVE[@]}"
  wait 2>/dev/null || true
  log "stopped the processes this script started; results and logs in $OUT"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- setup

require_root_debian() {
  [[ $(id -u) -eq 0 ]] || die "run as root (it installs packages and starts daemons)"
  command -v apt-get >/dev/null || die "this script is for Debian (apt-get not found)"
}

install_missing() {
  local want=() pkg
  for pkg in nginx squid tinyproxy privoxy dante-server microsocks haproxy jq openssl procps; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || want+=("$pkg")
  done
  ((${#want[@]})) || return 0
  log "installing ${want[*]}"
  local guard=/usr/sbin/policy-rc.d added=0
  if [[ ! -e $guard ]]; then
    # Keep apt from starting the packages' own services: we start our own.
    printf '#!/bin/sh\nexit 101\n' >"$guard"; chmod +x "$guard"; added=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${want[@]}" >/dev/null
  ((added)) && rm -f "$guard"
  return 0
}

build() {
  if [[ -n $LOADGEN ]]; then
    # Both given: nothing to build.
    [[ -x $LOADGEN && -x $PACER_BIN ]] || die "LOADGEN or PACER_BIN is not an executable"
    return 0
  fi
  local jobs=()
  [[ -n $CARGO_JOBS ]] && jobs=(-j "$CARGO_JOBS")
  log "building pacer and the load generator (release)"
  (cd "$ROOT" && "$CARGO" build --release --locked "${jobs[@]}" --bin pacer)
  LOADGEN=$(cd "$ROOT" && "$CARGO" bench --bench loadgen --no-run --locked "${jobs[@]}" \
      --message-format=json 2>/dev/null |
    jq -r 'select(.executable != null and .target.name == "loadgen") | .executable' | tail -n1)
  [[ -x $LOADGEN ]] || die "load generator not built"
  [[ -x $PACER_BIN ]] || die "pacer not built ($PACER_BIN)"
}

raise_fd_limit() {
  ulimit -Hn 65536 2>/dev/null || true
  local hard
  hard=$(ulimit -Hn)
  [[ $hard == unlimited ]] && hard=65536
  ((hard > 65536)) && hard=65536
  ulimit -n "$hard"
  NOFILE=$hard
  # A proxy holds two sockets per tunnel; leave room for everything else.
  IDLE_TUNNELS=$(( (NOFILE - 1024) / 2 ))
  ((IDLE_TUNNELS > IDLE_CONNS)) && IDLE_TUNNELS=$IDLE_CONNS
  ((IDLE_CONNS + 1024 > NOFILE)) && IDLE_CONNS=$((NOFILE - 1024))
  log "open files limit $NOFILE: $IDLE_CONNS idle connections, $IDLE_TUNNELS idle tunnels"
}

# Fills @NAME@ placeholders of a template into the run folder; the
# HTTP/SOCKS5/admin ports are pacer's unless given.
fill() {
  local template=$1 out=$2 port=${3:-0}
  local http=${4:-$PACER_HTTP_PORT} socks=${5:-$PACER_SOCKS_PORT} admin=${6:-$PACER_ADMIN_PORT}
  sed -e "s|@RUN@|$RUN|g" -e "s|@PORT@|$port|g" -e "s|@NOFILE@|$NOFILE|g" \
      -e "s|@HTTP_PORT@|$http|g" -e "s|@SOCKS_PORT@|$socks|g" \
      -e "s|@ADMIN_PORT@|$admin|g" -e "s|@THREADS@|$(nproc)|g" \
      -e "s|@SPLICE_PORT@|$HAPROXY_SPLICE_PORT|g" -e "s|@ORIGIN_PORT@|$ORIGIN_PORT|g" \
      "$PEERS_DIR/$template" >"$out"
}

prepare_run_folder() {
  mkdir -p "$RUN/nginx-tmp"
  chmod 755 "$OUT" "$RUN"
  head -c 1048576 /dev/urandom >"$RUN/1m.bin"
  chmod 644 "$RUN/1m.bin"
  fill nginx.conf "$RUN/nginx.conf" "$ORIGIN_PORT"
  fill pacer.toml "$RUN/pacer.toml"
  fill pacer.toml "$RUN/pacer-base.toml" 0 "$PACER_BASE_HTTP_PORT" "$PACER_BASE_SOCKS_PORT" \
    "$PACER_BASE_ADMIN_PORT"
  if [[ -n $PACER_BASE_SERVER ]]; then
    awk -v extra="$PACER_BASE_SERVER" '{ print } /^\[server\]$/ { print extra }' \
      "$RUN/pacer-base.toml" >"$RUN/pacer-base.toml.new"
    mv "$RUN/pacer-base.toml.new" "$RUN/pacer-base.toml"
  fi
  fill g3proxy.yaml "$RUN/g3proxy.yaml" 0 "$G3_HTTP_PORT" "$G3_SOCKS_PORT"
  fill haproxy.cfg "$RUN/haproxy.cfg" "$HAPROXY_PORT"
  fill squid.conf "$RUN/squid.conf" "$SQUID_PORT"
  fill tinyproxy.conf "$RUN/tinyproxy.conf" "$TINYPROXY_PORT"
  fill privoxy.config "$RUN/privoxy.config" "$PRIVOXY_PORT"
  fill privoxy.action "$RUN/privoxy.action"
  fill danted.conf "$RUN/danted.conf" "$DANTE_PORT"
  printf 'demo:%s\n' "$(openssl passwd -apr1 demo)" >"$RUN/squid.passwd"
  touch "$RUN/squid-cache.log"
  chown proxy "$RUN/squid-cache.log" 2>/dev/null || true
  chmod 644 "$RUN/squid.passwd"
  "$PACER_BIN" check --config "$RUN/pacer.toml" >/dev/null ||
    die "bench/peers/pacer.toml does not validate"
}

# ---------------------------------------------------------------- processes

port_of() {
  case $1 in
    direct) echo "$ORIGIN_PORT" ;;
    pacer) echo "$PACER_HTTP_PORT" ;;
    pacer-base) echo "$PACER_BASE_HTTP_PORT" ;;
    g3proxy) echo "$G3_HTTP_PORT" ;;
    haproxy) echo "$HAPROXY_PORT" ;;
    haproxy-splice) echo "$HAPROXY_SPLICE_PORT" ;;
    squid) echo "$SQUID_PORT" ;;
    tinyproxy) echo "$TINYPROXY_PORT" ;;
    privoxy) echo "$PRIVOXY_PORT" ;;
    dante) echo "$DANTE_PORT" ;;
    microsocks) echo "$MICROSOCKS_PORT" ;;
  esac
}

# The SOCKS5 port of a member that serves both doors.
socks_port_of() {
  case $1 in
    pacer) echo "$PACER_SOCKS_PORT" ;;
    pacer-base) echo "$PACER_BASE_SOCKS_PORT" ;;
    g3proxy) echo "$G3_SOCKS_PORT" ;;
    *) port_of "$1" ;;
  esac
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {
  local port=$1
  for _ in $(seq 100); do
    port_busy "$port" && return 0
    sleep 0.1
  done
  return 1
}

# Starts one server in the foreground of a background job; records its PID.
start() {
  local name=$1 port
  port=$(port_of "$name")
  port_busy "$port" && die "port $port for $name is already in use"
  case $name in
    direct) nginx -e "$RUN/nginx-error.log" -p "$RUN" -c "$RUN/nginx.conf" 2>>"$RUN/nginx.out" & ;;
    pacer) RUST_LOG=$PACER_LOG "$PACER_BIN" --config "$RUN/pacer.toml" 2>>"$PACER_LOG_FILE" & ;;
    pacer-base)
      RUST_LOG=$PACER_BASE_LOG "$PACER_BASE_BIN" --config "$RUN/pacer-base.toml" 2>>"$PACER_LOG_FILE" & ;;
    g3proxy) "$G3PROXY" -c "$RUN/g3proxy.yaml" -C "$RUN" >>"$RUN/g3proxy.out" 2>&1 & ;;
    haproxy) haproxy -db -f "$RUN/haproxy.cfg" >>"$RUN/haproxy.out" 2>&1 & ;;
    squid) squid -N -f "$RUN/squid.conf" >>"$RUN/squid.out" 2>&1 & ;;
    tinyproxy) tinyproxy -d -c "$RUN/tinyproxy.conf" >>"$RUN/tinyproxy.out" 2>&1 & ;;
    privoxy) privoxy --no-daemon "$RUN/privoxy.config" >>"$RUN/privoxy.out" 2>&1 & ;;
    dante) danted -f "$RUN/danted.conf" -p "$RUN/danted.pid" >>"$RUN/danted.out" 2>&1 & ;;
    microsocks) microsocks -i 127.0.0.1 -p "$MICROSOCKS_PORT" -u demo -P demo >>"$RUN/microsocks.out" 2>&1 & ;;
    *) die "unknown server $name" ;;
  esac
  PID[$name]=$!
  track "$!"
  wait_port "$port" || die "$name did not start listening on $port (logs in $RUN)"
  case $name in
    pacer | pacer-base | g3proxy)
      wait_port "$(socks_port_of "$name")" || die "$name SOCKS5 did not start" ;;
    haproxy)
      wait_port "$HAPROXY_SPLICE_PORT" || die "haproxy's splice port did not open"
      PID[haproxy-splice]=${PID[haproxy]} ;;
  esac
}

stop() {
  local name=$1
  [[ -n ${PID[$name]:-} ]] || return 0
  stop_pids "${PID[$name]}"
  reap "${PID[$name]}"
  unset "PID[$name]"
  [[ $name == haproxy ]] && unset "PID[haproxy-splice]"
  return 0
}

# ---------------------------------------------------------------- /proc readings

# Sum of utime+stime clock ticks of a process tree.
cpu_ticks() {
  local total=0 p line rest
  for p in $(tree_pids "$1"); do
    line=$(cat "/proc/$p/stat" 2>/dev/null) || continue
    rest=${line##*) }
    # shellcheck disable=SC2086
    set -- $rest
    total=$((total + ${12} + ${13}))
  done
  echo "$total"
}

# Sum of a /proc/PID/status field (VmRSS, VmHWM) over a tree, in KiB.
mem_kib() {
  local root=$1 field=$2 total=0 p v
  for p in $(tree_pids "$root"); do
    v=$(awk -v f="$field:" '$1 == f { print $2 }' "/proc/$p/status" 2>/dev/null) || continue
    total=$((total + ${v:-0}))
  done
  echo "$total"
}

# ---------------------------------------------------------------- figures

# id|label|kind|door group|connections|path|extra loadgen flags
FIGURES=(
  "http_c64|HTTP req/s, 64 conns|rps|http|64|/small|"
  "http_c256|HTTP req/s, 256 conns|rps|http|256|/small|"
  "connect_c64|CONNECT tunnels/s, 64 conns (1 request each)|rps|connect|64|/small|"
  "connect_c256|CONNECT tunnels/s, 256 conns|rps|connect|256|/small|"
  "socks_c64|SOCKS5 tunnels/s, 64 conns (1 request each)|rps|socks|64|/small|"
  "socks_c256|SOCKS5 tunnels/s, 256 conns|rps|socks|256|/small|"
  "socks_kept_c64|SOCKS5 req/s over kept tunnels, 64 conns|rps|socks_kept|64|/small|"
  "http_lat1|HTTP latency p50/p99/p99.9 us, 1 conn|lat|http|1|/small|"
  "http_lat10|HTTP latency p50/p99/p99.9 us, 10 conns|lat|http|10|/small|"
  "socks_lat1|SOCKS5 tunnel latency p50/p99/p99.9 us, 1 conn|lat|socks|1|/small|"
  "socks_lat10|SOCKS5 tunnel latency p50/p99/p99.9 us, 10 conns|lat|socks|10|/small|"
  "http_1m|HTTP 1 MiB transfer MB/s, BULK conn(s), keep-alive|mbps|http|BULK|/1m|--bulk"
  "connect_1m|CONNECT 1 MiB transfer MB/s, BULK conn(s), new tunnel per transfer|mbps|connect|BULK|/1m|--bulk"
  "connect_1m_kept|CONNECT 1 MiB transfer MB/s, BULK conn(s), one tunnel kept|mbps|connect_kept|BULK|/1m|--bulk"
  "socks_1m|SOCKS5 1 MiB transfer MB/s, BULK conn(s), new tunnel per transfer|mbps|socks|BULK|/1m|--bulk"
  "socks_1m_kept|SOCKS5 1 MiB transfer MB/s, BULK conn(s), one tunnel kept|mbps|socks_kept|BULK|/1m|--bulk"
)
# Figures whose runs also give the proxy's CPU per request.
CPU_FIGURES="http_c64 socks_c64 socks_kept_c64 http_1m connect_1m_kept socks_1m_kept"

# Whether a server is part of this run (g3proxy only with its binary, the
# second pacer only with PACER_BASE_BIN, haproxy-splice with haproxy).
# Whether a figure is measured in this run (ONLY, when given, lists them).
selected() { [[ -z $ONLY || " $ONLY " == *" $1 "* ]]; }

want() {
  case $1 in
    g3proxy) [[ -n $G3PROXY && " $PROXIES " == *" g3proxy "* ]] ;;
    pacer-base) [[ -n $PACER_BASE_BIN ]] ;;
    haproxy-splice) want haproxy ;;
    *) [[ " $PROXIES " == *" $1 "* ]] ;;
  esac
}

# Every server to start besides the origin, each once.
servers() {
  local list="" p
  for p in pacer pacer-base squid tinyproxy privoxy dante microsocks g3proxy haproxy; do
    want "$p" && list+=" $p"
  done
  echo "$list"
}

# The proxies (and the direct ceiling) a door group is measured on; the
# relays join the keep-alive 1 MiB figure (group http, kind mbps).
members() {
  local group=$1 kind=${2:-} list="direct" p
  want pacer && list+=" pacer"
  want pacer-base && list+=" pacer-base"
  case $group in
    http | connect*) for p in $HTTP_PEERS; do want "$p" && list+=" $p"; done ;;
    socks*) for p in $SOCKS_PEERS; do want "$p" && list+=" $p"; done ;;
    all) for p in $HTTP_PEERS $SOCKS_PEERS; do want "$p" && [[ " $list " != *" $p "* ]] && list+=" $p"; done ;;
  esac
  if [[ $group == http && $kind == mbps ]]; then
    for p in $RELAYS; do want "$p" && list+=" $p"; done
  fi
  echo "$list"
}

is_relay() { [[ " $RELAYS " == *" $1 "* ]]; }

# Load generator arguments for one member of a door group. The direct
# ceiling opens a new connection per request where the proxies open a new
# tunnel per request, and keeps its connection where they keep theirs.
door_args() {
  local group=$1 member=$2
  if [[ $member == direct ]] || is_relay "$member"; then
    case $group in
      http | *_kept) echo "direct" ;;
      *) echo "direct --fresh" ;;
    esac
    return
  fi
  local port auth="--auth $AUTH"
  [[ $member == privoxy || $member == dante ]] && auth=""
  case $group in
    http) echo "http --proxy 127.0.0.1:$(port_of "$member") $auth" ;;
    connect) echo "connect --proxy 127.0.0.1:$(port_of "$member") $auth" ;;
    connect_kept) echo "connect --keep-tunnel --proxy 127.0.0.1:$(port_of "$member") $auth" ;;
    socks*)
      port=$(socks_port_of "$member")
      local keep=""
      [[ $group == socks_kept ]] && keep="--keep-tunnel"
      echo "socks5 $keep --proxy 127.0.0.1:$port $auth" ;;
  esac
}

record() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$RESULTS"; }

# One measured run of one member for one figure; records its numbers.
run_once() {
  local fig=$1 kind=$2 group=$3 conns=$4 path=$5 extra=$6 member=$7
  local pid out t0 t1 lg
  pid=${PID[$member]}
  out=$OUT/last.json
  # A relay forwards to the origin: the load generator fetches from it.
  local target_port=$ORIGIN_PORT
  is_relay "$member" && target_port=$(port_of "$member")
  # shellcheck disable=SC2046,SC2086
  timeout $((DURATION + WARMUP + 60)) "$LOADGEN" $(door_args "$group" "$member") $extra \
    --target "http://127.0.0.1:$target_port$path" -c "$conns" \
    --warmup "${WARMUP}s" --duration "${DURATION}s" --json >"$out" 2>>"$OUT/loadgen.err" &
  lg=$!
  track "$lg"
  sleep "$WARMUP"
  t0=$(cpu_ticks "$pid")
  wait "$lg" || log "  $member: loadgen reported failure (see $OUT/loadgen.err)"
  unset "LIVE[$lg]"
  t1=$(cpu_ticks "$pid")
  local json
  json=$(tail -n1 "$out")
  [[ -n $json ]] || { record "$fig" "$member" errors 1; return; }
  local requests errors
  requests=$(jq -r .requests <<<"$json")
  errors=$(jq -r .errors_total <<<"$json")
  record "$fig" "$member" errors "$errors"
  case $kind in
    rps) record "$fig" "$member" value "$(jq -r .rps <<<"$json")" ;;
    mbps) record "$fig" "$member" value "$(jq -r .mbps <<<"$json")" ;;
    lat)
      record "$fig" "$member" value "$(jq -r .p50_us <<<"$json")"
      record "$fig" "$member" p99 "$(jq -r .p99_us <<<"$json")"
      record "$fig" "$member" p999 "$(jq -r .p999_us <<<"$json")" ;;
  esac
  if [[ " $CPU_FIGURES " == *" $fig "* ]] && ((requests > 0)); then
    local us
    us=$(awk -v d=$((t1 - t0)) -v hz="$(getconf CLK_TCK)" -v n="$requests" \
      'BEGIN { printf "%.2f", d / hz * 1e6 / n }')
    record "cpu_$fig" "$member" value "$us"
  fi
  log "  $member: $(jq -c '{rps, mbps, p50_us, p99_us, errors}' <<<"$json")"
}

# Every figure: round-robin over its members, ROUNDS times, rotating the
# order each round so that no proxy always runs first.
run_figures() {
  local spec fig label kind group conns path extra round
  for spec in "${FIGURES[@]}"; do
    IFS='|' read -r fig label kind group conns path extra <<<"$spec"
    selected "$fig" || continue
    [[ $conns == BULK ]] && conns=$BULK_CONNS
    # shellcheck disable=SC2207
    local list=($(members "$group" "$kind")) n i
    n=${#list[@]}
    for round in $(seq "$ROUNDS"); do
      log "$label: round $round/$ROUNDS"
      for ((i = 0; i < n; i++)); do
        run_once "$fig" "$kind" "$group" "$conns" "$path" "$extra" "${list[$(((i + round - 1) % n))]}"
      done
    done
  done
}

record_peak_rss() {
  local name
  for name in direct $(servers); do
    [[ -n ${PID[$name]:-} ]] || continue
    record peak_rss "$name" value "$(awk -v k="$(mem_kib "${PID[$name]}" VmHWM)" 'BEGIN { printf "%.1f", k / 1024 }')"
  done
}

# Idle memory: restart the server (so freed memory from earlier phases is
# not reused), warm it up briefly, read RSS, open N idle connections or
# tunnels, read RSS again; the delta divided by the connections still open.
idle_once() {
  local fig=$1 member=$2 group=$3 via=$4 count=$5
  local pid base now open lg ready=$OUT/idle.json
  stop "$member"
  start "$member"
  # shellcheck disable=SC2046
  "$LOADGEN" $(door_args "$group" "$member") --target "http://127.0.0.1:$ORIGIN_PORT/small" \
    -c 16 --warmup 0s --duration 1s --json >/dev/null 2>>"$OUT/loadgen.err" || true
  sleep "$IDLE_SETTLE"
  pid=${PID[$member]}
  base=$(mem_kib "$pid" VmRSS)
  local proxy_args=""
  if [[ $member != direct ]]; then
    local port
    port=$(port_of "$member")
    [[ $via == socks5 ]] && port=$(socks_port_of "$member")
    proxy_args="--proxy 127.0.0.1:$port"
    [[ $member != privoxy && $member != dante ]] && proxy_args+=" --auth $AUTH"
  fi
  : >"$ready"
  # shellcheck disable=SC2086
  "$LOADGEN" idle --via "$via" $proxy_args --target "http://127.0.0.1:$ORIGIN_PORT/small" \
    -c "$count" --hold "${IDLE_HOLD}s" --json >"$ready" 2>>"$OUT/loadgen.err" &
  lg=$!
  track "$lg"
  for _ in $(seq 1800); do
    grep -q '"event":"ready"' "$ready" && break
    [[ -d /proc/$lg ]] || break
    sleep 0.1
  done
  sleep "$IDLE_SETTLE"
  now=$(mem_kib "$pid" VmRSS)
  local line errors
  line=$(grep '"event":"ready"' "$ready" || true)
  [[ -n $line ]] || line='{"open": 0}'
  open=$(jq -r '.open // 0' <<<"$line" 2>/dev/null || echo 0)
  errors=$(jq -r '[(.errors // {})[]] | add // 0' <<<"$line" 2>/dev/null || echo 0)
  stop_pids "$lg"
  reap "$lg"
  record "$fig" "$member" errors "${errors:-$count}"
  if ((open > 0)); then
    record "$fig" "$member" value "$(awk -v d=$((now - base)) -v n="$open" 'BEGIN { printf "%.2f", d / n }')"
  fi
  record "$fig" "$member" open "$open"
  log "  $member idle via $via: $open open, RSS $base -> $now KiB"
}

# One idle-memory figure, IDLE_ROUNDS times over its members.
idle_figure() {
  local fig=$1 group=$2 via=$3 count=$4 round member
  selected "$fig" || return 0
  log "$fig: $count idle connections or tunnels"
  for round in $(seq "$IDLE_ROUNDS"); do
    for member in $(members "$group"); do
      if [[ $member == direct ]]; then
        [[ $fig == idle_http ]] && idle_once "$fig" direct http direct "$count"
        continue
      fi
      idle_once "$fig" "$member" "$group" "$via" "$count"
    done
  done
}

run_idle() {
  idle_figure idle_http http http "$IDLE_CONNS"
  idle_figure idle_connect connect connect "$IDLE_TUNNELS"
  idle_figure idle_socks socks socks5 "$IDLE_TUNNELS"
}

# ---------------------------------------------------------------- the table

# Medians of every (figure, member, metric) as lines "fig member metric value".
medians() {
  sort -t$'\t' -k1,1 -k2,2 -k3,3 -k4,4g "$RESULTS" | awk -F'\t' '
    function flush() {
      if (n == 0) return
      if (key ~ /\terrors$/) { s = 0; for (i = 1; i <= n; i++) s += v[i]; m = s }
      else m = (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
      print key "\t" m
    }
    { k = $1 "\t" $2 "\t" $3; if (k != key) { flush(); key = k; n = 0 } v[++n] = $4 }
    END { flush() }'
}

declare -A M=()
load_medians() {
  local fig member metric value
  while IFS=$'\t' read -r fig member metric value; do
    M["$fig|$member|$metric"]=$value
  done < <(medians)
}

fmt() { awk -v x="$1" -v d="$2" 'BEGIN { printf "%.*f", d, x }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "n/a" }'; }

row() { printf '| %s | %s | %s | %s | %s |\n' "$@"; }

# One table row per member of a figure.
figure_rows() {
  local fig=$1 label=$2 kind=$3 group=$4 member value direct shown vs errors
  [[ $fig == peak_rss ]] || selected "${fig#cpu_}" || return 0
  direct=${M["$fig|direct|value"]:-}
  local members_kind=""
  [[ $kind == mbps || $fig == cpu_http_1m ]] && members_kind=mbps
  for member in $(members "$group" "$members_kind"); do
    [[ $kind == idle && $member == direct && $fig != idle_http ]] && continue
    value=${M["$fig|$member|value"]:-}
    errors=${M["$fig|$member|errors"]:-0}
    errors=$(fmt "$errors" 0)
    local name=$member
    [[ $member == direct ]] && name="direct (nginx)"
    [[ $member == haproxy ]] && name="haproxy (TCP, copy)"
    [[ $member == haproxy-splice ]] && name="haproxy (TCP, splice)"
    if [[ -z $value && $kind == idle && ${M["$fig|$member|open"]:-} == 0 ]]; then
      row "$label" "$name" "none held open (the peer closes them)" "-" "$errors"
      continue
    fi
    if [[ -z $value ]]; then
      row "$label" "$name" "no result" "-" "$errors"
      continue
    fi
    case $kind in
      rps) shown=$(fmt "$value" 0); vs=$(ratio "$value" "$direct") ;;
      mbps) shown=$(fmt "$value" 1); vs=$(ratio "$value" "$direct") ;;
      cpu) shown=$(fmt "$value" 2); vs=$(ratio "$value" "$direct") ;;
      lat)
        shown="$(fmt "$value" 1) / $(fmt "${M["$fig|$member|p99"]}" 1) / $(fmt "${M["$fig|$member|p999"]}" 1)"
        vs="$(awk -v a="$value" -v b="$direct" 'BEGIN { printf "%+.1f", a - b }') us ($(ratio "$value" "$direct"))"
        [[ $member == direct ]] && vs="1.00x" ;;
      mem) shown=$(fmt "$value" 1); vs="-" ;;
      idle) shown="$(fmt "$value" 2) (${M["$fig|$member|open"]:-0} open)"; vs="-" ;;
    esac
    row "$label" "$name" "$shown" "$vs" "$errors"
  done
}

print_table() {
  local spec fig label kind group conns path extra
  echo
  echo "| figure | proxy | value | vs direct | errors |"
  echo "|---|---|---|---|---|"
  for spec in "${FIGURES[@]}"; do
    IFS='|' read -r fig label kind group conns path extra <<<"$spec"
    label=${label//BULK/$BULK_CONNS}
    figure_rows "$fig" "$label" "$kind" "$group"
  done
  figure_rows cpu_http_c64 "CPU us per request, HTTP 64 conns (proxy process)" cpu http
  figure_rows cpu_socks_c64 "CPU us per tunnel, SOCKS5 64 conns (proxy process)" cpu socks
  figure_rows cpu_socks_kept_c64 "CPU us per request, SOCKS5 kept tunnels 64 conns (proxy process)" cpu socks
  figure_rows cpu_http_1m "CPU us per 1 MiB, HTTP keep-alive (proxy process)" cpu http
  figure_rows cpu_connect_1m_kept "CPU us per 1 MiB, CONNECT kept tunnels (proxy process)" cpu connect
  figure_rows cpu_socks_1m_kept "CPU us per 1 MiB, SOCKS5 kept tunnels (proxy process)" cpu socks
  figure_rows peak_rss "peak RSS MiB after the load figures (VmHWM)" mem all
  figure_rows idle_http "RSS KiB per idle keep-alive client connection" idle http
  figure_rows idle_connect "RSS KiB per idle CONNECT tunnel" idle connect
  figure_rows idle_socks "RSS KiB per idle SOCKS5 tunnel" idle socks
}

best_peer() {
  local fig=$1 peers=$2 lower=${3:-0} best="" p v
  for p in $peers; do
    want "$p" || continue
    v=${M["$fig|$p|value"]:-}
    [[ -n $v ]] || continue
    if [[ -z $best ]] || awk -v a="$v" -v b="$best" -v l="$lower" 'BEGIN { exit !((l && a < b) || (!l && a > b)) }'; then
      best=$v
    fi
  done
  echo "$best"
}

check_line() {
  local what=$1 got=$2 op=$3 limit=$4
  if [[ -z $got ]]; then
    echo "- $what: no result"
    return
  fi
  local ok
  ok=$(awk -v g="$got" -v l="$limit" -v op="$op" 'BEGIN { print ((op == ">=" && g >= l) || (op == "<=" && g <= l) || (op == "<" && g < l)) ? "met" : "NOT met" }')
  echo "- $what: $(fmt "$got" 2) (target $op $limit): $ok"
}

# The peer pacer's targets are set against: g3proxy when it ran, else the
# best of `peers` (lowest when `lower`).
reference() {
  local fig=$1 peers=$2 lower=${3:-0}
  if want g3proxy; then
    echo "${M["$fig|g3proxy|value"]:-}"
  else
    best_peer "$fig" "$peers" "$lower"
  fi
}

quotient() { [[ -n $1 && -n $2 ]] && awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) print a / b }'; }

print_targets() {
  want pacer || return 0
  local peer=g3proxy
  want g3proxy || peer="the best peer"
  echo
  echo "Targets (pacer, medians above; peer: $peer):"
  check_line "HTTP req/s at 64 conns vs $peer" \
    "$(quotient "${M["http_c64|pacer|value"]:-}" "$(reference http_c64 "$HTTP_PEERS")")" ">=" 1.3
  check_line "CPU per HTTP request vs $peer" \
    "$(quotient "${M["cpu_http_c64|pacer|value"]:-}" "$(reference cpu_http_c64 "$HTTP_PEERS" 1)")" "<=" 0.6
  check_line "SOCKS5 req/s over kept tunnels at 64 conns vs $peer" \
    "$(quotient "${M["socks_kept_c64|pacer|value"]:-}" "$(reference socks_kept_c64 "$SOCKS_PEERS")")" ">=" 1.2
  check_line "SOCKS5 1 MiB over kept tunnels (c$BULK_CONNS) vs direct" \
    "$(quotient "${M["socks_1m_kept|pacer|value"]:-}" "${M["socks_1m_kept|direct|value"]:-}")" ">=" 0.65
  check_line "HTTP 1 MiB GET (c$BULK_CONNS) vs direct" \
    "$(quotient "${M["http_1m|pacer|value"]:-}" "${M["http_1m|direct|value"]:-}")" ">=" 0.6
  check_line "KiB per idle keep-alive connection" "${M["idle_http|pacer|value"]:-}" "<=" 12
  check_line "KiB per idle SOCKS5 tunnel" "${M["idle_socks|pacer|value"]:-}" "<=" 12
}

# One row of the summary: a figure for pacer, g3proxy and direct, each
# shown with `how` (value, ratio to g3proxy, ratio to direct).
summary_cell() {
  local fig=$1 member=$2 how=$3 digits=$4 v ref
  v=${M["$fig|$member|value"]:-}
  [[ -n $v ]] || { echo "-"; return; }
  case $how in
    value) fmt "$v" "$digits" ;;
    vs_g3)
      ref=${M["$fig|g3proxy|value"]:-}
      if [[ $member == pacer && -n $ref ]]; then
        echo "$(fmt "$v" "$digits") ($(ratio "$v" "$ref") g3)"
      else
        fmt "$v" "$digits"
      fi ;;
    vs_direct) ratio "$v" "${M["$fig|direct|value"]:-0}" ;;
  esac
}

summary_row() {
  local label=$1 fig=$2 how=$3 digits=$4 direct
  direct=$(summary_cell "$fig" direct "$how" "$digits")
  [[ $fig == cpu_* || $fig == idle_* ]] && direct="-"
  printf '| %s | %s | %s | %s |\n' "$label" "$(summary_cell "$fig" pacer "$how" "$digits")" \
    "$(summary_cell "$fig" g3proxy "$how" "$digits")" "$direct"
}

# The figures of issue 16, in its table's shape.
print_summary() {
  want pacer || return 0
  echo
  echo "| figure (same run, medians) | pacer | g3proxy | direct |"
  echo "|---|---|---|---|"
  summary_row "plain HTTP req/s, 64 conns" http_c64 vs_g3 0
  summary_row "proxy CPU µs per plain HTTP request" cpu_http_c64 vs_g3 1
  summary_row "SOCKS5 req/s over kept tunnels, 64 conns" socks_kept_c64 vs_g3 0
  summary_row "proxy CPU µs per SOCKS5 request (kept tunnels)" cpu_socks_kept_c64 vs_g3 1
  summary_row "SOCKS5 1 MiB transfers, kept tunnels (c$BULK_CONNS)" socks_1m_kept vs_direct 2
  summary_row "CONNECT 1 MiB transfers, kept tunnels (c$BULK_CONNS)" connect_1m_kept vs_direct 2
  summary_row "plain HTTP 1 MiB GET (c$BULK_CONNS)" http_1m vs_direct 2
  summary_row "proxy CPU µs per 1 MiB, SOCKS5 kept tunnels" cpu_socks_1m_kept vs_g3 0
  summary_row "proxy CPU µs per 1 MiB, plain HTTP" cpu_http_1m vs_g3 0
  summary_row "idle keep-alive HTTP connection, KiB" idle_http value 1
  summary_row "idle SOCKS5 tunnel (after one GET, ${IDLE_SETTLE} s idle), KiB" idle_socks value 1
  if want haproxy; then
    printf '| HAProxy TCP forward, 1 MiB keep-alive (c%s): copy / splice | %s / %s | - | 1.00x |\n' \
      "$BULK_CONNS" "$(summary_cell http_1m haproxy vs_direct 2)" \
      "$(summary_cell http_1m haproxy-splice vs_direct 2)"
  fi
}

# ---------------------------------------------------------------- main

main() {
  require_root_debian
  install_missing
  build
  raise_fd_limit
  mkdir -p "$RUN"
  : >"$RESULTS"
  prepare_run_folder
  log "results in $OUT; $ROUNDS round(s) of ${DURATION}s (+${WARMUP}s warmup) per figure"
  start direct
  local name
  for name in $(servers); do start "$name"; done
  run_figures
  record_peak_rss
  run_idle
  load_medians
  {
    echo "pacer vs peers, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, ${DURATION}s x $ROUNDS round(s) per figure, medians"
    print_table
    print_summary
    print_targets
  } | tee "$OUT/table.md"
}

# Sourced by bench/profile.sh for its helpers; run when executed.
if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  main "$@"
fi
