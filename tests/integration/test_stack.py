"""The stacks the tests, the demo and the bench stand on: every port a service of theirs
listens on lies below the kernel's ephemeral range (where an outbound socket, even a readiness
probe connecting to itself, can take the port first), and scripts/dev-stack names what holds
a port it needs."""
import os
import re
import socket
import subprocess
from pathlib import Path

import harness as h

ROOT = h.ROOT


def _ephemeral_start():
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _default_ports():
    """(where, port) of every port a stack of the project listens on by default."""
    found = []
    harness = (ROOT / "tests/integration/harness.py").read_text()
    for m in re.finditer(r'"SS_IT_\w*PORT", "(\d+)"', harness):
        found.append(("tests/integration/harness.py", int(m.group(1))))
    lib = (ROOT / "scripts/lib.sh").read_text()
    for m in re.finditer(r'\$\{\w*PORT:=(\d+)\}', lib):
        found.append(("scripts/lib.sh", int(m.group(1))))
    bench = (ROOT / "bench/run").read_text()
    for m in re.finditer(r'\b\w*PORT=(\d+)|127\.0\.0\.1:(\d+)', bench):
        found.append(("bench/run", int(m.group(1) or m.group(2))))
    cmake = (ROOT / "tests/CMakeLists.txt").read_text()
    for m in re.finditer(r'SS_IT_\w*PORT=(\d+)', cmake):
        # a cluster's nodes use the port and the two after it
        found += [("tests/CMakeLists.txt", int(m.group(1)) + n) for n in range(3)]
    return found


def test_every_default_stack_port_is_below_the_ephemeral_range():
    ports = _default_ports()
    where = {w for w, _ in ports}
    assert where == {"tests/integration/harness.py", "scripts/lib.sh", "bench/run",
                     "tests/CMakeLists.txt"}, f"ports not found in some files: {sorted(where)}"
    start = _ephemeral_start()
    inside = [(w, p) for w, p in ports if p >= start]
    assert not inside, f"ports in the ephemeral range ({start}-): {inside}"


def test_dev_stack_names_the_process_holding_a_port_it_needs(tmp_path):
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        port = h.free_port()
        s.bind(("127.0.0.1", port))
        s.listen(1)
        env = {**os.environ, "STACK_DIR": str(tmp_path / "stack"), "REDIS_PORT": str(port)}
        r = subprocess.run([str(ROOT / "scripts/dev-stack"), "start-redis"], env=env,
                           capture_output=True, text=True, timeout=60)
    out = r.stdout + r.stderr
    assert r.returncode != 0, f"dev-stack started Redis on a port in use: {out}"
    assert f"port {port} is in use by" in out, out
    assert f"pid={os.getpid()}" in out and "python" in out, \
        f"the holder (this test, pid {os.getpid()}) is not named: {out}"
