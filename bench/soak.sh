#!/usr/bin/env bash
# bench/soak.sh: the soak run of RELIABILITY.md. By hand, as root, on a
# Debian machine (never in CI); loopback only, about 8 minutes, bounded.
#
#   bench/soak.sh                    # every scenario
#   bench/soak.sh failover trickle   # some of them (held failover sigkill stalled trickle)
#
# Installs nginx (the origin) if missing, builds pacer and the load
# generator in release, raises the open-files soft limit to the hard limit
# (10,000 held clients need it), and runs bench/soak.py, which starts and
# stops every process it needs (nginx, the two pool upstreams, one pacer per
# scenario) and prints one JSON line per scenario. Results and logs go to
# OUT (default: a new /tmp/pacer-soak.XXXXXX).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=${OUT:-$(mktemp -d /tmp/pacer-soak.XXXXXX)}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}

if ! command -v nginx >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # Installed without starting its service.
  printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
  apt-get install -y -qq nginx >/dev/null
  rm -f /usr/sbin/policy-rc.d
fi
(cd "$ROOT" && cargo build --release --locked --bin pacer)
loadgen=$(cd "$ROOT" && cargo bench --bench loadgen --no-run --message-format=json 2>/dev/null |
  python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "loadgen" and m.get("executable"):
        print(m["executable"])')
ulimit -n "$(ulimit -Hn)"
echo "open files: $(ulimit -n); results in $OUT" >&2
exec python3 "$ROOT/bench/soak.py" --pacer "$TARGET/release/pacer" --loadgen "$loadgen" --out "$OUT" "$@"
