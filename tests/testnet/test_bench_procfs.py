"""The /proc readings `suyuan bench` reports: a process's CPU time and its children."""

from __future__ import annotations

import os
import subprocess
import sys

from testnet.bench import child_pids, proc_cpu_seconds


def test_child_pids_names_a_running_child_process_until_it_exits() -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    )
    try:
        assert child.pid in child_pids(os.getpid())
        cpu = proc_cpu_seconds(child.pid)
        assert cpu is not None
        assert cpu >= 0
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(timeout=10)
    assert child.pid not in child_pids(os.getpid())
    assert proc_cpu_seconds(child.pid) is None  # reaped: gone
    assert child_pids(2**22 + 12345) == []  # no such process
