#!/usr/bin/env python3
"""The soak run of RELIABILITY.md, started by bench/soak.sh (which builds
pacer and the load generator and raises the open-files limit).

Everything runs on loopback and every loop is bounded in time. Scenarios,
each on a pacer of its own (fresh process, config in the run folder):

  held      10,000 idle keep-alive clients held while 32 others are served
  failover  60 s of load while the two pool upstreams are killed and
            restarted in turn (one always lives); the origin counts who
            reached it, so a request sent direct would show
  sigkill   pacer SIGKILLed under load and restarted on the same store: the
            origin never sees more requests than the daily cap
  stalled   1,000 clients ask for a 64 MiB response and stop reading
  trickle   clients trickle a request body one byte a second while others
            are served

For each: pacer's RSS before, at peak (VmHWM, reset at the start) and
after, its open fds after, and the scenario's own checks. Prints one JSON
object per scenario and writes them to OUT/soak.json.

`soak.py upstream PORT SOURCE` is the pool upstream: a small HTTP proxy
(absolute-form and CONNECT) whose connections to the origin leave from
SOURCE, a loopback address of its own.
"""

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ORIGIN_PORT = 19000
SLOW_ORIGIN_PORT = 19001
PACER_HTTP = 19080
PACER_ADMIN = 19090
UPSTREAMS = [(19128, "127.0.0.2"), (19129, "127.0.0.3")]
DIRECT_SOURCE = "127.0.0.1"
BIG_BYTES = 64 * 1024 * 1024
DAILY_CAP = 4000
# One origin log line of the sigkill scenario: `127.0.0.1 /small?sigkill 200`.
LINE_BYTES = len("127.0.0.1 /small?sigkill 200\n")
FAILOVER_S = int(os.environ.get("SOAK_FAILOVER_S", "60"))

PACER_CONFIG = """
[server]
idle_timeout = "{idle}"
max_connections = 30000

[[listeners]]
protocol = "http"
addr = "127.0.0.1:{http}"

[admin]
addr = "127.0.0.1:{admin}"
api_keys = ["soak-key"]

[state]
path = "{state}"

[[actions]]
name = "any"

[policies.open]
name = "Open"
free = true
mode = "pace"
max_wait = "1s"
[policies.open.limits]
any_per_second = 1000000

[policies.capped]
name = "Capped"
free = true
mode = "reject"
[policies.capped.limits]
any_daily_cap = {cap}

[[accounts]]
id = "demo"
secret = "demo"
policy = "open"

[[accounts]]
id = "pool"
secret = "pool"
policy = "open"
country = "US"

[[accounts]]
id = "capped"
secret = "capped"
policy = "capped"

[[upstreams]]
url = "http://127.0.0.1:{up1}"
country = "US"

[[upstreams]]
url = "http://127.0.0.1:{up2}"
country = "US"

[routing]
strategy = "round_robin"
max_attempts = 2
failure_cooldown = "1s"
"""

NGINX_CONFIG = """
daemon off;
master_process on;
worker_processes 1;
worker_rlimit_nofile 20000;
pid {run}/nginx.pid;
error_log {run}/nginx-error.log warn;
events {{ worker_connections 16000; multi_accept on; }}
http {{
    log_format who '$remote_addr $request_uri $status';
    access_log {run}/origin.log who;
    keepalive_timeout 300s;
    keepalive_requests 100000000;
    sendfile on;
    tcp_nodelay on;
    client_body_temp_path {run}/nginx-tmp/body;
    proxy_temp_path {run}/nginx-tmp/proxy;
    fastcgi_temp_path {run}/nginx-tmp/fastcgi;
    uwsgi_temp_path {run}/nginx-tmp/uwsgi;
    scgi_temp_path {run}/nginx-tmp/scgi;
    default_type application/octet-stream;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location = /small {{ return 200 "soak: a small response\\n"; }}
        location = /big {{ alias {run}/big.bin; }}
    }}
}}
"""


def log(message):
    print(f"[soak {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ------------------------------------------------------------ the upstream


async def pipe(reader, writer):
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        try:
            writer.close()
        except (ConnectionError, OSError):
            pass


async def upstream_client(reader, writer, source):
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
        writer.close()
        return
    method, target, _ = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
    if method == "CONNECT":
        host, _, port = target.rpartition(":")
    else:
        url = urllib.parse.urlsplit(target)
        host, port = url.hostname, url.port or 80
    try:
        o_reader, o_writer = await asyncio.open_connection(
            host, int(port), local_addr=(source, 0)
        )
    except OSError:
        writer.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
        writer.close()
        return
    if method == "CONNECT":
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
    else:
        o_writer.write(head)
    await asyncio.gather(pipe(reader, o_writer), pipe(o_reader, writer))


def run_upstream(port, source):
    async def main():
        server = await asyncio.start_server(
            lambda r, w: upstream_client(r, w, source), "127.0.0.1", port, backlog=1024
        )
        async with server:
            await server.serve_forever()

    asyncio.run(main())


# -------------------------------------------------------- the slow origin


class SlowOrigin(BaseHTTPRequestHandler):
    """Reads a whole request body before it answers, like an app server."""

    protocol_version = "HTTP/1.1"

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        try:
            self.rfile.read(length)
            self.send_response(200)
            self.send_header("Content-Length", "3")
            self.end_headers()
            self.wfile.write(b"ok\n")
        except OSError:
            # pacer closed the connection (the trickle was cut).
            self.close_connection = True

    def log_message(self, *args):
        pass


# ------------------------------------------------------------- processes


class Soak:
    def __init__(self, args):
        self.args = args
        self.run = args.out
        self.started = []
        self.pacer = None
        self.upstreams = {}
        os.makedirs(f"{self.run}/nginx-tmp", exist_ok=True)

    def spawn(self, argv, name, **kwargs):
        out = open(f"{self.run}/{name}.log", "ab")
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, **kwargs)
        self.started.append(proc)
        return proc

    def stop(self, proc, sig=signal.SIGTERM):
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def stop_all(self):
        for proc in reversed(self.started):
            self.stop(proc)

    def start_origin(self):
        with open(f"{self.run}/big.bin", "wb") as big:
            big.truncate(BIG_BYTES)
        conf = f"{self.run}/nginx.conf"
        with open(conf, "w") as f:
            f.write(NGINX_CONFIG.format(run=self.run, port=ORIGIN_PORT))
        self.spawn(["nginx", "-e", f"{self.run}/nginx-error.log", "-p", self.run, "-c", conf], "nginx")
        wait_port(ORIGIN_PORT)
        slow = ThreadingHTTPServer(("127.0.0.1", SLOW_ORIGIN_PORT), SlowOrigin)
        slow.daemon_threads = True
        threading.Thread(target=slow.serve_forever, daemon=True).start()

    def start_upstream(self, index):
        port, source = UPSTREAMS[index]
        proc = self.spawn([sys.executable, __file__, "upstream", str(port), source], f"upstream{index}")
        wait_port(port)
        self.upstreams[index] = proc

    def start_pacer(self, name, idle="60s", state="memory"):
        conf = f"{self.run}/pacer-{name}.toml"
        with open(conf, "w") as f:
            f.write(
                PACER_CONFIG.format(
                    idle=idle,
                    http=PACER_HTTP,
                    admin=PACER_ADMIN,
                    state=state,
                    cap=DAILY_CAP,
                    up1=UPSTREAMS[0][0],
                    up2=UPSTREAMS[1][0],
                )
            )
        env = dict(os.environ, RUST_LOG="warn")
        self.pacer = self.spawn([self.args.pacer, "--config", conf], f"pacer-{name}", env=env)
        wait_port(PACER_HTTP)
        time.sleep(0.5)
        return self.pacer

    def loadgen(self, mode, auth, target, conns, duration, extra=()):
        argv = [
            self.args.loadgen, mode, "--proxy", f"127.0.0.1:{PACER_HTTP}", "--auth", auth,
            "--target", target, "-c", str(conns), "--json", *extra,
        ]
        if duration:
            argv += ["--duration", duration]
        return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)

    def origin_mark(self):
        """Where the origin's log ends now."""
        return os.path.getsize(f"{self.run}/origin.log")

    def origin_lines(self, mark, tag):
        """The origin's log lines since `mark` for URLs carrying `tag`."""
        with open(f"{self.run}/origin.log") as f:
            f.seek(mark)
            return [line.split() for line in f if tag in line]

    def settled_rss_kib(self, pid):
        """pacer's RSS once a scenario's load is gone: a little traffic
        (jemalloc hands freed pages back to the system only while it
        allocates), then 12 s, then one request more."""
        target = f"http://127.0.0.1:{ORIGIN_PORT}/small"
        result_of(self.loadgen("http", "demo:demo", target, 1, "2s", ["--warmup", "0s"]))
        time.sleep(12)
        result_of(self.loadgen("http", "demo:demo", target, 1, None, ["--requests", "1", "--warmup", "0s"]))
        return rss_kib(pid)


def wait_port(port, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


def status_of(pid):
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    return fields


def rss_kib(pid):
    return int(status_of(pid)["VmRSS"].split()[0])


def peak_kib(pid):
    return int(status_of(pid)["VmHWM"].split()[0])


def reset_peak(pid):
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")


def fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def settle_fds(pid, baseline, timeout=70):
    """Waits (bounded) for pacer's fds to come back to `baseline`."""
    start = time.time()
    while time.time() - start < timeout:
        if fds(pid) <= baseline:
            break
        time.sleep(0.5)
    return fds(pid), round(time.time() - start, 1)


def result_of(proc):
    out, _ = proc.communicate(timeout=400)
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return lines


def errors_of(report):
    return report.get("errors_total")


def memory(pid):
    return {"rss_kib": rss_kib(pid), "fds": fds(pid)}


# ------------------------------------------------------------- scenarios


def held(soak, rounds=2):
    """Two rounds on one pacer: memory that a round leaked would show as a
    higher peak or a higher RSS after, the second time."""
    pacer = soak.start_pacer("held", idle="45s")
    before = memory(pacer.pid)
    target = f"http://127.0.0.1:{ORIGIN_PORT}/small"
    baseline = result_of(soak.loadgen("http", "demo:demo", target, 32, "10s"))[-1]
    result = {"scenario": "held", "served_baseline_rps": baseline.get("rps"),
              "served_p99_us_baseline": baseline.get("p99_us"), "rounds": []}
    for _ in range(rounds):
        reset_peak(pacer.pid)
        idle = soak.loadgen("idle", "demo:demo", target, 10000, None, ["--hold", "40s"])
        ready = json.loads(idle.stdout.readline())
        under = result_of(soak.loadgen("http", "demo:demo", target, 32, "10s"))[-1]
        rest = idle.communicate(timeout=120)[0]
        done = [json.loads(l) for l in rest.splitlines() if l.startswith("{")][-1]
        peak = peak_kib(pacer.pid)
        after_fds, settled = settle_fds(pacer.pid, before["fds"])
        result["rounds"].append({
            "held_open_at_ready": ready.get("open"),
            "held_open_at_done": done.get("open"),
            "served_under_hold_rps": under.get("rps"),
            "served_ratio": round(under.get("rps", 0) / max(baseline.get("rps", 1), 1), 2),
            "served_p99_us_under_hold": under.get("p99_us"),
            "served_errors": errors_of(under),
            "rss_kib": {"before": before["rss_kib"], "peak": peak, "after": soak.settled_rss_kib(pacer.pid)},
            "fds": {"before": before["fds"], "after": after_fds, "settled_after_s": settled},
        })
    soak.stop(pacer)
    return result


def failover(soak):
    soak.start_upstream(0)
    soak.start_upstream(1)
    pacer = soak.start_pacer("failover", idle="10s")
    before = memory(pacer.pid)
    reset_peak(pacer.pid)
    mark = soak.origin_mark()
    target = f"http://127.0.0.1:{ORIGIN_PORT}/small?failover"
    load = soak.loadgen("http", "pool:pool", target, 16, f"{FAILOVER_S}s", ["--warmup", "0s"])
    kills = 0
    start = time.time()
    turn = 0
    while time.time() - start < FAILOVER_S - 3:
        time.sleep(1.5)
        victim = turn % 2
        soak.stop(soak.upstreams[victim], signal.SIGKILL)
        kills += 1
        time.sleep(1.5)
        soak.start_upstream(victim)
        turn += 1
    report = result_of(load)[-1]
    peak = peak_kib(pacer.pid)
    lines = soak.origin_lines(mark, "?failover")
    by_source = {}
    for source, _, status in lines:
        by_source[source] = by_source.get(source, 0) + 1
    after_fds, settled = settle_fds(pacer.pid, before["fds"])
    result = {
        "scenario": "failover",
        "upstream_kills": kills,
        "client_requests_ok": report.get("requests"),
        "client_errors": report.get("errors"),
        "origin_by_source": by_source,
        "origin_direct": by_source.get(DIRECT_SOURCE, 0),
        "rps": report.get("rps"),
        "rss_kib": {"before": before["rss_kib"], "peak": peak, "after": soak.settled_rss_kib(pacer.pid)},
        "fds": {"before": before["fds"], "after": after_fds, "settled_after_s": settled},
    }
    soak.stop(pacer)
    for proc in soak.upstreams.values():
        soak.stop(proc)
    return result


def sigkill(soak):
    state = f"{soak.run}/sigkill.db"
    if os.path.exists(state):
        os.remove(state)
    target = f"http://127.0.0.1:{ORIGIN_PORT}/small?sigkill"
    mark = soak.origin_mark()
    pacer = soak.start_pacer("sigkill-1", idle="10s", state=state)
    before = memory(pacer.pid)
    reset_peak(pacer.pid)
    load = soak.loadgen("http", "capped:capped", target, 16, "20s", ["--warmup", "0s"])
    # Killed once about a third of the cap has gone through.
    deadline = time.time() + 20
    while time.time() < deadline:
        if soak.origin_mark() - mark >= LINE_BYTES * DAILY_CAP // 3:
            break
        time.sleep(0.02)
    peak_first = peak_kib(pacer.pid)
    pacer.kill()
    pacer.wait()
    killed_at = len(soak.origin_lines(mark, "?sigkill"))
    load.kill()
    load.wait()
    pacer = soak.start_pacer("sigkill-2", idle="10s", state=state)
    reset_peak(pacer.pid)
    second = result_of(soak.loadgen("http", "capped:capped", target, 16, "6s", ["--warmup", "0s"]))[-1]
    lines = soak.origin_lines(mark, "?sigkill")
    result = {
        "scenario": "sigkill",
        "daily_cap": DAILY_CAP,
        "origin_before_kill": killed_at,
        "origin_total_both_runs": len(lines),
        "cap_exceeded": len(lines) > DAILY_CAP,
        "second_run_refused": second.get("errors"),
        "rss_kib": {
            "before": before["rss_kib"],
            "peak": max(peak_first, peak_kib(pacer.pid)),
            "after": soak.settled_rss_kib(pacer.pid),
        },
        "fds": {"before": before["fds"], "after": settle_fds(pacer.pid, before["fds"])[0]},
    }
    soak.stop(pacer)
    return result


def stalled(soak, clients=1000, rounds=2):
    """Two rounds on one pacer, as for `held`."""
    pacer = soak.start_pacer("stalled", idle="20s")
    before = memory(pacer.pid)
    request = (
        f"GET http://127.0.0.1:{ORIGIN_PORT}/big HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "Proxy-Authorization: Basic ZGVtbzpkZW1v\r\n\r\n"
    ).encode()
    result = {"scenario": "stalled", "clients": clients, "response_mib": BIG_BYTES // 2**20, "rounds": []}
    for _ in range(rounds):
        reset_peak(pacer.pid)
        socks = []
        for _ in range(clients):
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.connect(("127.0.0.1", PACER_HTTP))
            s.sendall(request)
            socks.append(s)
        time.sleep(10)
        peak = peak_kib(pacer.pid)
        held_fds = fds(pacer.pid)
        # pacer cuts a response that moves no byte for idle_timeout.
        cut_fds, cut_after = settle_fds(pacer.pid, before["fds"], timeout=90)
        for s in socks:
            s.close()
        after_fds, _ = settle_fds(pacer.pid, before["fds"], timeout=30)
        result["rounds"].append({
            "fds_while_stalled": held_fds,
            "fds_after_idle_timeout": cut_fds,
            "cut_after_s": round(10 + cut_after, 1),
            "growth_kib_per_client": round((peak - before["rss_kib"]) / clients, 1),
            "rss_kib": {"before": before["rss_kib"], "peak": peak, "after": soak.settled_rss_kib(pacer.pid)},
            "fds": {"before": before["fds"], "after": after_fds},
        })
    soak.stop(pacer)
    return result


def trickle_one(result, index):
    s = socket.create_connection(("127.0.0.1", PACER_HTTP))
    s.sendall(
        (
            f"POST http://127.0.0.1:{SLOW_ORIGIN_PORT}/upload HTTP/1.1\r\nHost: x\r\n"
            "Proxy-Authorization: Basic ZGVtbzpkZW1v\r\nContent-Length: 1000\r\n\r\n"
        ).encode()
    )
    start = time.time()
    s.settimeout(1.0)
    answer = b""
    sent = 0
    while time.time() - start < 60:
        try:
            chunk = s.recv(4096)
            if not chunk:
                break
            answer += chunk
            if b"\r\n\r\n" in answer:
                break
        except socket.timeout:
            try:
                s.sendall(b"x")
                sent += 1
            except OSError:
                break
        except OSError:
            break
    result[index] = {
        "cut_after_s": round(time.time() - start, 1),
        "bytes_sent": sent,
        "answer": answer.split(b"\r\n", 1)[0].decode("latin-1"),
    }
    s.close()


def trickle(soak, clients=20):
    pacer = soak.start_pacer("trickle", idle="5s")
    before = memory(pacer.pid)
    target = f"http://127.0.0.1:{ORIGIN_PORT}/small"
    baseline = result_of(soak.loadgen("http", "demo:demo", target, 8, "8s"))[-1]
    reset_peak(pacer.pid)
    results = [None] * clients
    threads = [threading.Thread(target=trickle_one, args=(results, i)) for i in range(clients)]
    for t in threads:
        t.start()
    under = result_of(soak.loadgen("http", "demo:demo", target, 8, "8s", ["--warmup", "0s"]))[-1]
    for t in threads:
        t.join(70)
    cut = sorted(r["cut_after_s"] for r in results if r)
    after_fds, _ = settle_fds(pacer.pid, before["fds"], timeout=20)
    result = {
        "scenario": "trickle",
        "tricklers": clients,
        "idle_timeout_s": 5,
        "trickler_cut_after_s": {"min": cut[0], "max": cut[-1]},
        "trickler_bytes_sent_max": max(r["bytes_sent"] for r in results if r),
        "trickler_answers": sorted({r["answer"] for r in results if r}),
        "others_rps_baseline": baseline.get("rps"),
        "others_rps_during": under.get("rps"),
        "others_ratio": round(under.get("rps", 0) / max(baseline.get("rps", 1), 1), 2),
        "others_errors": errors_of(under),
        "rss_kib": {"before": before["rss_kib"], "peak": peak_kib(pacer.pid), "after": soak.settled_rss_kib(pacer.pid)},
        "fds": {"before": before["fds"], "after": after_fds},
    }
    soak.stop(pacer)
    return result


SCENARIOS = {"held": held, "failover": failover, "sigkill": sigkill, "stalled": stalled, "trickle": trickle}


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "upstream":
        run_upstream(int(sys.argv[2]), sys.argv[3])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--pacer", required=True)
    parser.add_argument("--loadgen", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("scenarios", nargs="*", default=list(SCENARIOS))
    args = parser.parse_args()
    soak = Soak(args)
    results = []
    try:
        soak.start_origin()
        for name in args.scenarios:
            log(f"scenario {name}")
            result = SCENARIOS[name](soak)
            print(json.dumps(result), flush=True)
            results.append(result)
    finally:
        soak.stop_all()
        with open(f"{soak.run}/soak.json", "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
