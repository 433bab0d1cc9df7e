"""Two "hosts" on this one machine: two network namespaces joined by a veth pair, each end limited
to a rate by a token bucket (``tc ... tbf``), and Open MPI told to reach the second through
``ip netns exec`` instead of ssh and to talk over TCP between them only. Needs root (CI runs as root).

    with two_hosts("1gbit") as mpirun:          # mpirun: the argv prefix of a two-rank job
        subprocess.run([*mpirun, sys.executable, "-m", "convnet", "train", "--distributed", ...])

Host 10.77.0.N is namespace ``<prefix>N`` with core N-1 of this machine and one thread per
library; rank 0 runs in the first, rank 1 in the second.
No --oversubscribe: across namespaces it adds a floor of about 8 ms to every message.
"""

import contextlib
import os
import subprocess
import tempfile
from pathlib import Path

NETWORK = "10.77.0"
# Open MPI's remote shell for a host that is a namespace: the host's last number names it.
# Each host gets one core of this machine (host N: core N-1), as a host of its own would; mpirun
# must not bind ranks itself (each host's orted would bind its rank to core 0).
AGENT = """#!/bin/sh
host=$1; shift
exec ip netns exec "{prefix}${{host##*.}}" taskset -c $((${{host##*.}} - 1)) sh -c "$*"
"""
ONE_THREAD = [option for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS")
              for option in ("-x", f"{name}=1")]


class NamespacesUnavailable(RuntimeError):
    pass


def _ip(*argv):
    subprocess.run(["ip", *argv], check=True, capture_output=True, text=True)


@contextlib.contextmanager
def two_hosts(rate="1gbit"):
    prefix = f"cvh{os.getpid()}x"
    names = [f"{prefix}1", f"{prefix}2"]
    try:
        _ip("netns", "add", names[0])
    except (OSError, subprocess.CalledProcessError) as error:
        detail = error.stderr.strip() if isinstance(error, subprocess.CalledProcessError) else error
        raise NamespacesUnavailable(f"cannot create network namespaces here (needs root and iproute2): {detail}") \
            from None
    try:
        _ip("netns", "add", names[1])
        _ip("link", "add", f"{prefix}a", "netns", names[0], "type", "veth", "peer", "name", f"{prefix}b",
            "netns", names[1])
        for number, (name, device) in enumerate(zip(names, (f"{prefix}a", f"{prefix}b")), 1):
            _ip("-n", name, "link", "set", "lo", "up")
            _ip("-n", name, "addr", "add", f"{NETWORK}.{number}/24", "dev", device)
            _ip("-n", name, "link", "set", device, "up")
            subprocess.run(["ip", "netns", "exec", name, "tc", "qdisc", "add", "dev", device, "root", "tbf", "rate",
                            rate, "burst", "128kb", "latency", "10ms"], check=True, capture_output=True)
        with tempfile.TemporaryDirectory() as folder:
            agent = Path(folder) / "netns-agent"
            agent.write_text(AGENT.format(prefix=prefix))
            agent.chmod(0o755)
            yield ["ip", "netns", "exec", names[0], "taskset", "-c", "0", "mpirun", "--allow-run-as-root", "-n", "2",
                   "--bind-to", "none", *ONE_THREAD,
                   "--host", f"{NETWORK}.1,{NETWORK}.2", "--mca", "plm_rsh_agent", str(agent),
                   "--mca", "btl", "tcp,self", "--mca", "btl_tcp_if_include", f"{NETWORK}.0/24",
                   "--mca", "oob_tcp_if_include", f"{NETWORK}.0/24"]
    finally:
        for name in names:
            subprocess.run(["ip", "netns", "del", name], capture_output=True)
