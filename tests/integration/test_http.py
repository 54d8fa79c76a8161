"""The HTTP server under /metrics, /healthz and /readyz holds out against clients that open
connections and then idle: one address holds at most 8 connections (more are closed at
once), every connection idle for 2 s is closed, so the liveness probe from another address
is answered while 80 slow clients are connected (the server had 64 slots and a 10 s
timeout before: they took every slot, the probe failed and Kubernetes restarted the pod)."""

import select
import socket
import time

import harness as h

PER_IP = 8  # SS_HTTP_CONNECTIONS_PER_IP (worker/daemon/http.h)
IDLE_TIMEOUT_S = 2  # SS_HTTP_TIMEOUT_S
SLOW_CLIENTS = 80
# half a request: the server waits for the rest
PARTIAL = b"GET /healthz HTTP/1.1\r\nHost: local"


def _start(ctx):
    port = h.free_port()
    # 127.0.0.1: every address of 127/8 reaches it (the slow clients come from 127.0.0.2)
    w = ctx.start_worker(ctx.props({"metrics.listen": f"127.0.0.1:{port}"}))
    deadline = time.monotonic() + 20
    while h.http_get(port, "/healthz")[0] != 200:
        assert w.alive(), "worker exited" + w.describe()
        assert time.monotonic() < deadline, "/healthz never answered" + w.describe()
        time.sleep(0.2)
    return w, port


def _slow_client(port, source, request=PARTIAL):
    """A connection from `source` to the worker that sends `request` and then idles."""
    s = socket.socket()
    s.bind((source, 0))
    s.settimeout(3)
    s.connect(("127.0.0.1", port))
    try:
        if request:
            s.sendall(request)
    except OSError:
        pass  # the server may have closed it already (over the per-address limit)
    return s


def _closed_by_server(s):
    """True once the server has closed `s` (end of stream or reset)."""
    readable, _, _ = select.select([s], [], [], 0)
    if not readable:
        return False
    try:
        return s.recv(4096) == b""
    except OSError:
        return True


def _close_all(socks):
    for s in socks:
        s.close()


def test_clients_idling_on_another_address_leave_the_liveness_probe_answered(ctx):
    w, port = _start(ctx)
    slow = [_slow_client(port, "127.0.0.2") for _ in range(SLOW_CLIENTS)]
    try:
        time.sleep(0.5)
        t0 = time.monotonic()
        # a bounded wait, as a liveness probe's timeout: not a speed target
        assert h.http_get(port, "/healthz", timeout=3) == (200, "ok\n"), \
            "liveness probe not answered with 80 slow clients connected" + w.describe()
        assert time.monotonic() - t0 < 3
        status, _ = h.http_get(port, "/metrics", timeout=3)
        assert status == 200
        held = [s for s in slow if not _closed_by_server(s)]
        assert len(held) <= PER_IP, f"{len(held)} connections held from one address"
    finally:
        _close_all(slow)
    assert w.alive(), w.describe()
    w.stop()


def test_idle_connections_are_closed_after_the_short_timeout(ctx):
    w, port = _start(ctx)
    t0 = time.monotonic()
    # half a request, and nothing at all, each under the per-address limit
    idle = [_slow_client(port, "127.0.0.1") for _ in range(3)] + \
        [_slow_client(port, "127.0.0.1", request=None) for _ in range(3)]
    closed_at = {}
    try:
        deadline = t0 + IDLE_TIMEOUT_S + 3
        while len(closed_at) < len(idle) and time.monotonic() < deadline:
            for i, s in enumerate(idle):
                if i not in closed_at and _closed_by_server(s):
                    closed_at[i] = time.monotonic() - t0
            time.sleep(0.05)
    finally:
        _close_all(idle)
    assert len(closed_at) == len(idle), \
        f"{len(idle) - len(closed_at)} idle connections still open after " \
        f"{IDLE_TIMEOUT_S + 3}s (closed: {closed_at})"
    # held until the timeout, not refused
    assert min(closed_at.values()) >= IDLE_TIMEOUT_S - 1, closed_at
    assert h.http_get(port, "/healthz", timeout=3) == (200, "ok\n")
    w.stop()
