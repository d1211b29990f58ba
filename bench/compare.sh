#!/usr/bin/env bash
# bench/compare.sh: pacer beside the established proxies, in one run.
#
# Run by hand, as root, on a Debian machine (not in CI):
#
#   sudo bench/compare.sh                       # full run (~10 s per figure, 3 rounds)
#   DURATION=3 ROUNDS=1 sudo bench/compare.sh   # smoke run
#
# It installs what is missing (nginx, squid, tinyproxy, privoxy,
# dante-server, microsocks, jq) with apt-get, without letting apt start
# their services; builds pacer and the load generator in release; starts an
# nginx origin (/small ~100 B, /1m 1 MiB) and every proxy on loopback with
# the minimal configs in bench/peers/ on fixed high ports; then measures
# each figure for each proxy, round-robin over the proxies, ROUNDS times,
# and prints one markdown table of medians with a ratio against the origin
# reached directly (the ceiling). On exit it stops only the processes it
# started (their PIDs and their children), never anything else.
#
# Settings (environment):
#   DURATION=10     measured seconds per run        WARMUP=1   unmeasured seconds before
#   ROUNDS=3        rounds per figure (median)      BULK_CONNS=1  connections for 1 MiB figures
#   IDLE_CONNS=10000  idle keep-alive connections   IDLE_HOLD=30  seconds the idle hold may last
#   PROXIES="pacer squid tinyproxy privoxy dante microsocks"  (a subset is fine)
#   PACER_LOG=warn  RUST_LOG for pacer (info turns the access log on)
#   CARGO=cargo     CARGO_JOBS=     (e.g. 1 on a shared machine)
#   PACER_BIN=      the pacer binary to measure (default: the one built
#                   here; point it at another build to compare two commits)
#   OUT=            results folder (default: a new /tmp/pacer-bench.XXXXXX)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PEERS_DIR=$ROOT/bench/peers
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-1}
ROUNDS=${ROUNDS:-3}
BULK_CONNS=${BULK_CONNS:-1}
IDLE_CONNS=${IDLE_CONNS:-10000}
IDLE_HOLD=${IDLE_HOLD:-30}
PROXIES=${PROXIES:-"pacer squid tinyproxy privoxy dante microsocks"}
PACER_LOG=${PACER_LOG:-warn}
CARGO=${CARGO:-cargo}
CARGO_JOBS=${CARGO_JOBS:-}
PACER_BIN=${PACER_BIN:-$ROOT/target/release/pacer}
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

HTTP_PEERS="squid tinyproxy privoxy"
SOCKS_PEERS="dante microsocks"

declare -A PID=()          # name -> PID of a server this script started
declare -A LIVE=()         # every PID this script started and has not reaped
LOADGEN=""
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
  for pkg in nginx squid tinyproxy privoxy dante-server microsocks jq openssl procps; do
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

# Fills @NAME@ placeholders of a template into the run folder.
fill() {
  local template=$1 out=$2 port=${3:-0}
  sed -e "s|@RUN@|$RUN|g" -e "s|@PORT@|$port|g" -e "s|@NOFILE@|$NOFILE|g" \
      -e "s|@HTTP_PORT@|$PACER_HTTP_PORT|g" -e "s|@SOCKS_PORT@|$PACER_SOCKS_PORT|g" \
      -e "s|@ADMIN_PORT@|$PACER_ADMIN_PORT|g" "$PEERS_DIR/$template" >"$out"
}

prepare_run_folder() {
  mkdir -p "$RUN/nginx-tmp"
  chmod 755 "$OUT" "$RUN"
  head -c 1048576 /dev/urandom >"$RUN/1m.bin"
  chmod 644 "$RUN/1m.bin"
  fill nginx.conf "$RUN/nginx.conf" "$ORIGIN_PORT"
  fill pacer.toml "$RUN/pacer.toml"
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
    pacer-socks) echo "$PACER_SOCKS_PORT" ;;
    squid) echo "$SQUID_PORT" ;;
    tinyproxy) echo "$TINYPROXY_PORT" ;;
    privoxy) echo "$PRIVOXY_PORT" ;;
    dante) echo "$DANTE_PORT" ;;
    microsocks) echo "$MICROSOCKS_PORT" ;;
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
    pacer) RUST_LOG=$PACER_LOG "$PACER_BIN" --config "$RUN/pacer.toml" 2>>"$RUN/pacer.log" & ;;
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
  if [[ $name == pacer ]]; then
    wait_port "$PACER_SOCKS_PORT" || die "pacer SOCKS5 did not start"
  fi
}

stop() {
  local name=$1
  [[ -n ${PID[$name]:-} ]] || return 0
  stop_pids "${PID[$name]}"
  reap "${PID[$name]}"
  unset "PID[$name]"
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
CPU_FIGURES="http_c64 socks_c64"

want() { [[ " $PROXIES " == *" $1 "* ]]; }

# The proxies (and the direct ceiling) a door group is measured on.
members() {
  local group=$1 list="direct" p
  want pacer && list+=" pacer"
  case $group in
    http | connect*) for p in $HTTP_PEERS; do want "$p" && list+=" $p"; done ;;
    socks*) for p in $SOCKS_PEERS; do want "$p" && list+=" $p"; done ;;
    all) for p in $HTTP_PEERS $SOCKS_PEERS; do want "$p" && list+=" $p"; done ;;
  esac
  echo "$list"
}

# Load generator arguments for one member of a door group. The direct
# ceiling opens a new connection per request where the proxies open a new
# tunnel per request, and keeps its connection where they keep theirs.
door_args() {
  local group=$1 member=$2
  if [[ $member == direct ]]; then
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
      port=$(port_of "$member")
      [[ $member == pacer ]] && port=$PACER_SOCKS_PORT
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
  # shellcheck disable=SC2046,SC2086
  timeout $((DURATION + WARMUP + 60)) "$LOADGEN" $(door_args "$group" "$member") $extra \
    --target "http://127.0.0.1:$ORIGIN_PORT$path" -c "$conns" \
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
    [[ $conns == BULK ]] && conns=$BULK_CONNS
    # shellcheck disable=SC2207
    local list=($(members "$group")) n i
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
  for name in direct $PROXIES; do
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
  sleep 1
  pid=${PID[$member]}
  base=$(mem_kib "$pid" VmRSS)
  local proxy_args=""
  if [[ $member != direct ]]; then
    local port
    port=$(port_of "$member")
    [[ $via == socks5 && $member == pacer ]] && port=$PACER_SOCKS_PORT
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
  sleep 1
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

run_idle() {
  local member
  log "idle keep-alive connections ($IDLE_CONNS)"
  for member in $(members http); do
    if [[ $member == direct ]]; then
      idle_once idle_http direct http direct "$IDLE_CONNS"
    else
      idle_once idle_http "$member" http http "$IDLE_CONNS"
    fi
  done
  log "idle CONNECT tunnels ($IDLE_TUNNELS)"
  for member in $(members connect); do
    [[ $member == direct ]] && continue
    idle_once idle_connect "$member" connect connect "$IDLE_TUNNELS"
  done
  log "idle SOCKS5 tunnels ($IDLE_TUNNELS)"
  for member in $(members socks); do
    [[ $member == direct ]] && continue
    idle_once idle_socks "$member" socks socks5 "$IDLE_TUNNELS"
  done
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
  direct=${M["$fig|direct|value"]:-}
  for member in $(members "$group"); do
    [[ $kind == idle && $member == direct && $fig != idle_http ]] && continue
    value=${M["$fig|$member|value"]:-}
    errors=${M["$fig|$member|errors"]:-0}
    errors=$(fmt "$errors" 0)
    local name=$member
    [[ $member == direct ]] && name="direct (nginx)"
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

print_targets() {
  want pacer || return 0
  local p b d
  echo
  echo "Targets (pacer, medians above):"
  p=${M["http_c64|pacer|value"]:-}; b=$(best_peer http_c64 "$HTTP_PEERS")
  check_line "HTTP 64 conns vs best HTTP peer" "$([[ -n $p && -n $b ]] && awk -v a="$p" -v b="$b" 'BEGIN { print a / b }')" ">=" 1.3
  p=${M["cpu_http_c64|pacer|value"]:-}; b=$(best_peer cpu_http_c64 "$HTTP_PEERS" 1)
  check_line "CPU per HTTP request vs best HTTP peer" "$([[ -n $p && -n $b ]] && awk -v a="$p" -v b="$b" 'BEGIN { print a / b }')" "<=" 0.6
  p=${M["connect_1m|pacer|value"]:-}; d=${M["connect_1m|direct|value"]:-}
  check_line "CONNECT 1 MiB transfer vs direct, new tunnel per transfer" "$([[ -n $p && -n $d ]] && awk -v a="$p" -v b="$d" 'BEGIN { print a / b }')" ">=" 0.97
  p=${M["connect_1m_kept|pacer|value"]:-}; d=${M["connect_1m_kept|direct|value"]:-}
  check_line "CONNECT 1 MiB transfer vs direct, one tunnel kept" "$([[ -n $p && -n $d ]] && awk -v a="$p" -v b="$d" 'BEGIN { print a / b }')" ">=" 0.97
  p=${M["socks_c64|pacer|value"]:-}; b=$(best_peer socks_c64 "$SOCKS_PEERS")
  check_line "SOCKS5 64 conns vs best SOCKS5 peer" "$([[ -n $p && -n $b ]] && awk -v a="$p" -v b="$b" 'BEGIN { print a / b }')" ">=" 1.2
  p=${M["http_lat1|pacer|value"]:-}; d=${M["http_lat1|direct|value"]:-}
  check_line "added p50 latency at 1 conn, us" "$([[ -n $p && -n $d ]] && awk -v a="$p" -v b="$d" 'BEGIN { print a - b }')" "<" 50
  check_line "KiB per idle keep-alive connection" "${M["idle_http|pacer|value"]:-}" "<=" 12
  check_line "KiB per idle CONNECT tunnel" "${M["idle_connect|pacer|value"]:-}" "<=" 16
  check_line "KiB per idle SOCKS5 tunnel" "${M["idle_socks|pacer|value"]:-}" "<=" 16
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
  for name in $PROXIES; do start "$name"; done
  run_figures
  record_peak_rss
  run_idle
  load_medians
  {
    echo "pacer vs peers, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, ${DURATION}s x $ROUNDS round(s) per figure, medians"
    print_table
    print_targets
  } | tee "$OUT/table.md"
}

# Sourced by bench/profile.sh for its helpers; run when executed.
if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  main "$@"
fi
