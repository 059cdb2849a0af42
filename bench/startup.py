#!/usr/bin/env python3
"""Start a server and measure the time to its first 200 (python3 stdlib only).

    startup.py --url http://127.0.0.1:PORT/webhooks/gigstack --log FILE -- CMD ARGS...

Spawns CMD, then in a tight loop connects to the URL's host:port and POSTs one
valid signed gigstack delivery (secret from $GIGSTACK_WEBHOOK_SECRET) until an
answer is 200. The time from just before the spawn to that answer is measured
with time.perf_counter. It then prints one line on stdout,

    ready pid=PID startup_ms=12.345

and stays on as the server's parent until the server exits, then exits with
the server's status. So the caller stops the server by signalling PID (or this
process: SIGTERM and SIGINT are passed on to the server), and the server is
always reaped here, even where PID 1 reaps no orphans.

On 2+ CPUs this process moves itself to the last CPU before spawning, so its
busy polling does not take CPU time from a server pinned to CPU 0 (the server
is pinned by CMD itself, e.g. `taskset -c 0 ...`). Exits 3 with `failed ...`
on stdout when the server exits early or gives no 200 within --timeout.
"""

import argparse
import http.client
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_deliveries import make_body, sign  # noqa: E402


def probe(host: str, port: int, path: str, body: bytes, signature: str):
    """One POST on a fresh connection: the status, or None if not reachable."""
    conn = http.client.HTTPConnection(host, port, timeout=5)
    try:
        conn.connect()
        # While nothing listens yet, a connect to a port in the ephemeral
        # range can get that very port as its source and connect to itself
        # (TCP simultaneous open): not the server's answer. (scripts/bench-load
        # picks ports below the ephemeral range, where this cannot happen.)
        if conn.sock.getsockname() == conn.sock.getpeername():
            return None
        conn.request("POST", path, body=body, headers={
            "Content-Type": "application/json",
            "X-Gigstack-Signature": signature,
        })
        response = conn.getresponse()
        response.read()
        return response.status
    except (ConnectionError, socket.timeout, OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="endpoint that must answer 200")
    parser.add_argument("--log", default=os.devnull, help="server stdout+stderr go here")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for a 200")
    parser.add_argument("cmd", nargs=argparse.REMAINDER, help="-- server command")
    args = parser.parse_args()
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        parser.error("no server command after --")
    secret = os.environ.get("GIGSTACK_WEBHOOK_SECRET")
    if not secret:
        parser.error("GIGSTACK_WEBHOOK_SECRET is not set")

    url = urllib.parse.urlsplit(args.url)
    host, port, path = url.hostname, url.port or 80, url.path or "/"
    # The probe's own event id, distinct from the load's deliveries.
    body = make_body(f"evt_startup_{os.getpid()}_{time.time_ns()}", random.Random(), int(time.time()))
    signature = sign(secret.encode(), body)

    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) > 1:
        os.sched_setaffinity(0, {cpus[-1]})

    log = open(args.log, "ab")
    start = time.perf_counter()
    server = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    log.close()

    def forward(signum, _frame):
        if server.poll() is None:
            server.send_signal(signum)
    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)

    elapsed_ms = None
    last = None
    deadline = start + args.timeout
    while time.perf_counter() < deadline:
        if server.poll() is not None:
            break
        # Tight loop on purpose: a refused connect comes back in microseconds,
        # and sleeping would round the figure up to the sleep's granularity.
        last = probe(host, port, path, body, signature)
        if last == 200:
            elapsed_ms = (time.perf_counter() - start) * 1000
            break

    if elapsed_ms is None:
        status = server.poll()
        why = f"server exited with {status}" if status is not None else f"no 200 in {args.timeout}s"
        print(f"failed pid={server.pid} {why} last_status={last}", flush=True)
        if status is None:
            server.terminate()
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
        return 3

    print(f"ready pid={server.pid} startup_ms={elapsed_ms:.3f}", flush=True)
    # Stay the server's parent until it ends, so it is reaped here (a signal
    # runs forward() and the wait resumes: PEP 475).
    status = server.wait()
    return status if status >= 0 else 128 - status


if __name__ == "__main__":
    sys.exit(main())
