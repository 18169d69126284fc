"""Testnet process handling (up, status, faults, down) against fake node processes (slow).

The real node is exercised by the slow tests; these check the process side quickly: PIDs
recorded, health waited for, faults applied by index, and nothing left running.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
from pathlib import Path

import pytest

from node.errors import InputError
from testnet import net, procs
from testnet.manifest import Manifest
from tests.testnet.harness import free_base_port, pid_alive

FAKE = Path(__file__).with_name("fake_node.py")
ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


@pytest.fixture
def fake_nodes(monkeypatch):
    monkeypatch.setattr(
        procs,
        "node_command",
        lambda config, resync=False: [
            sys.executable,
            str(FAKE),
            "node",
            "start",
            "--config",
            str(config),
            *(["--resync"] if resync else []),
        ],
    )
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    started: list[int] = []
    real_start = procs.start_node

    def start(config, log, cwd, resync=False):
        pid = real_start(config, log, cwd, resync=resync)
        started.append(pid)
        return pid

    monkeypatch.setattr(procs, "start_node", start)
    yield started
    for pid in started:  # belt and braces: nothing a test started may survive it
        if pid_alive(pid):
            os.kill(pid, 9)


def test_up_status_faults_down(tmp_path, fake_nodes):
    d = tmp_path / "net"
    port = free_base_port(3)
    man = net.up(d, 3, port, timeout=20)
    pids = [n.pid or 0 for n in man.nodes]
    assert all(pids)
    assert len(set(pids)) == 3
    st = net.status(d)
    assert [s.running for s in st] == [True] * 3
    assert [s.height for s in st] == [0, 0, 0]

    with pytest.raises(InputError, match="already running"):
        net.up(d, timeout=5)

    net.pause(d, 1)
    s1 = net.status(d)[1]
    assert (s1.running, s1.paused, s1.height) == (True, True, None)
    assert net.resume(d, 1) == (pids[1], True)
    assert net.status(d)[1].height == 0
    assert net.resume(d, 1) == (pids[1], False)  # (QA: a running node was said "resumed")

    assert net.kill(d, 2) == pids[2]
    s2 = net.status(d)[2]
    assert (s2.running, s2.pid, s2.height) == (False, None, None)
    with pytest.raises(InputError, match="not running"):
        net.pause(d, 2)

    new = net.restart(d, 2, timeout=20)
    assert new != pids[2]
    assert net.status(d)[2].running

    net.pause(d, 0)  # down must stop a paused node too
    stopped = net.down(d, timeout=5)
    assert sorted(stopped) == sorted([pids[0], pids[1], new])
    assert not any(pid_alive(p) for p in fake_nodes)
    assert [s.running for s in net.status(d)] == [False] * 3

    # a stopped testnet comes up again with the same files
    man2 = net.up(d, timeout=20)
    assert [n.address for n in man2.nodes] == [n.address for n in man.nodes]
    net.down(d, timeout=5)
    assert not any(pid_alive(p) for p in fake_nodes)


def test_fresh_replaces_a_stopped_testnet(tmp_path, fake_nodes):
    d = tmp_path / "net"
    net.up(d, 1, free_base_port(1), timeout=20)
    net.down(d)
    before = (d / "genesis.json").read_text()
    with pytest.raises(InputError, match="--fresh"):
        net.up(d, 2, timeout=5)
    net.up(d, 2, free_base_port(2), fresh=True, timeout=20)
    assert (d / "genesis.json").read_text() != before
    net.down(d)
    assert not any(pid_alive(p) for p in fake_nodes)


def test_fresh_keeps_files_it_did_not_write_and_checks_arguments_first(tmp_path, fake_nodes):
    # it deleted the testnet, then refused the folder for the user's file, leaving neither
    d = tmp_path / "net"
    net.up(d, 1, free_base_port(1), timeout=20)
    net.down(d)
    (d / "proof.json").write_text("mine")
    # QA: files beside the testnet's own, inside its folders, were deleted with them
    mine = [d / "keys" / "farm.key.bak", d / "configs" / "custom.toml",
            d / "node0" / "my-notes.txt", d / "node0" / "archive" / "old-store.tar"]  # fmt: skip
    for f in mine:
        f.parent.mkdir(exist_ok=True)
        f.write_text(f"mine: {f.name}")
    old = (d / "genesis.json").read_text()
    with pytest.raises(InputError, match="--nodes must be between"):
        net.up(d, 1000, fresh=True, timeout=5)
    assert (d / "genesis.json").read_text() == old  # bad arguments: nothing deleted
    net.up(d, 1, free_base_port(1), fresh=True, timeout=20)
    assert (d / "proof.json").read_text() == "mine"
    assert [f.read_text() for f in mine] == [f"mine: {f.name}" for f in mine]
    assert (d / "genesis.json").read_text() != old
    net.down(d)


def test_a_copied_or_moved_testnet_is_self_contained(tmp_path, fake_nodes):
    # the manifest and configs held absolute paths: --fresh on a copy deleted the
    # original's ledger, and a moved testnet started nodes on the old folder's data
    a = tmp_path / "a"
    net.up(a, 2, free_base_port(2), timeout=20)
    net.down(a)
    (a / "node0" / "ledger-marker").write_text("a's data")
    shutil.copytree(a, tmp_path / "b")
    b = tmp_path / "b"
    net.up(b, 2, free_base_port(2), fresh=True, timeout=20)
    net.down(b)
    assert (a / "node0" / "ledger-marker").read_text() == "a's data"
    assert Manifest.load(a).nodes[0].data_dir == (a / "node0").resolve()
    moved = tmp_path / "moved"
    a.rename(moved)
    man = net.up(moved, timeout=20)  # its configs name files relative to themselves
    assert all(str(n.data_dir).startswith(str(moved.resolve())) for n in man.nodes)
    net.down(moved)
    assert not a.exists()


def test_old_absolute_configs_of_a_copy_are_refused(tmp_path, fake_nodes):
    a = tmp_path / "a"
    man = net.up(a, 1, free_base_port(1), timeout=20)
    net.down(a)
    cfg = man.nodes[0].config
    text = cfg.read_text().replace('"../node0"', f'"{a.resolve() / "node0"}"')
    cfg.write_text(text.replace('"../genesis.json"', f'"{a.resolve() / "genesis.json"}"'))
    shutil.copytree(a, tmp_path / "b")
    with pytest.raises(InputError, match=r"not this testnet's .* copied or moved"):
        net.up(tmp_path / "b", timeout=20)
    net.up(a, timeout=20)  # in its own folder the absolute paths are its own
    net.down(a)


def test_a_node_that_exits_fails_up_with_its_log_and_stops_the_others(
    tmp_path, fake_nodes, monkeypatch
):
    monkeypatch.setenv("FAKE_NODE_MODE", "exit")
    with pytest.raises(net.TestnetStartError, match="exited before it became healthy") as ei:
        net.up(tmp_path / "net", 2, free_base_port(2), timeout=20)
    assert "failing at start as asked" in ei.value.log_tail
    assert not any(pid_alive(p) for p in fake_nodes)
    assert all(n.pid is None for n in Manifest.load(tmp_path / "net").nodes)


def test_an_unhealthy_node_fails_up_at_the_deadline(tmp_path, fake_nodes, monkeypatch):
    monkeypatch.setenv("FAKE_NODE_MODE", "unhealthy")
    with pytest.raises(net.TestnetStartError, match=r"not healthy after 2s"):
        net.up(tmp_path / "net", 1, free_base_port(1), timeout=2)
    assert not any(pid_alive(p) for p in fake_nodes)


def test_down_escalates_to_sigkill(tmp_path, fake_nodes, monkeypatch):
    monkeypatch.setenv("FAKE_NODE_MODE", "ignore-term")
    net.up(tmp_path / "net", 1, free_base_port(1), timeout=20)
    net.down(tmp_path / "net", timeout=0.5)
    assert not any(pid_alive(p) for p in fake_nodes)


def test_busy_port_is_refused_before_starting(tmp_path, fake_nodes):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(InputError, match="in use"):
            net.up(tmp_path / "net", 1, port, timeout=5)
    assert fake_nodes == []


def test_a_reused_pid_is_never_signalled(tmp_path):
    # our own PID is alive but is not a node of this config: nothing is sent to it
    cfg = tmp_path / "node0.toml"
    assert not procs.is_ours(os.getpid(), cfg)
    assert not procs.send(os.getpid(), cfg, signal.SIGKILL)
    assert procs.stop(os.getpid(), cfg)


def test_fresh_unlinks_a_linked_folder_and_never_deletes_through_it(tmp_path, fake_nodes):
    d = tmp_path / "net"
    net.up(d, 1, free_base_port(1), timeout=20)
    net.down(d)
    elsewhere = tmp_path / "elsewhere-node0"
    shutil.move(d / "node0", elsewhere)
    (d / "node0").symlink_to(elsewhere)
    (elsewhere / "node.log").write_text("the linked folder's own log")
    net.up(d, 1, free_base_port(1), fresh=True, timeout=20)
    net.down(d)
    # the link was removed, not followed: a file the testnet would delete is still there
    assert (elsewhere / "node.log").read_text() == "the linked folder's own log"
    assert not (d / "node0").is_symlink()


@pytest.mark.slow
def test_a_node_that_exits_at_start_is_told_by_its_own_error_and_exit_code(testnet4, tmp_path):
    # QA: restarting a stopped node after genesis.json changed (or on a full disk) failed
    # late as exit 5, "exited before it became healthy", with its log's tracebacks
    import json

    from tests.cli.helpers import suyuan

    d = testnet4.dir
    assert suyuan("testnet", "kill", "3", "--dir", str(d), cwd=tmp_path).returncode == 0
    genesis = d / "genesis.json"
    original = genesis.read_text()
    edited = json.loads(original)
    edited["chain_id"] = "edited-chain"
    genesis.write_text(json.dumps(edited))
    try:
        res = suyuan("testnet", "restart", "3", "--dir", str(d), cwd=tmp_path, timeout=120)
    finally:
        genesis.write_text(original)
    assert res.returncode in (2, 4), res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr  # the node's own error, not its log's tracebacks
    line = lines[0]
    assert "exited before it became healthy: " in line
    assert "another chain" in line or "genesis" in line


def test_a_node_the_manifest_lost_is_found_by_its_own_pid_file(tmp_path, fake_nodes):
    # QA: `testnet up` killed (-9) between starting a node and recording its PID left the
    # node running; status said "stopped", down left it, and the next up found its port taken
    from testnet import manifest as mf

    d = tmp_path / "net"
    man = net.up(d, 3, free_base_port(3), timeout=20)
    lost = man.nodes[1].pid
    assert lost
    (man.nodes[1].data_dir / "node.pid").write_text(f"{lost}\n")  # as a real node writes
    man.with_pid(1, None).save()
    assert mf.Manifest.load(d).nodes[1].pid is None
    assert net.status(d)[1].running  # found again
    stopped = net.down(d, timeout=5)
    assert lost in stopped
    assert not pid_alive(lost)


def test_a_testnet_moved_while_it_runs_is_still_found_and_stopped(tmp_path, fake_nodes):
    # QA: after `mv` of a running testnet's folder, status said every node stopped and
    # down stopped none ("stopped 0 node(s)"), while the nodes ran on
    a, moved = tmp_path / "a", tmp_path / "moved"
    man = net.up(a, 2, free_base_port(2), timeout=20)
    pids = [n.pid for n in man.nodes]
    a.rename(moved)
    assert [s.running for s in net.status(moved)] == [True, True]
    net.down(moved)
    assert not any(pid_alive(p) for p in pids if p)
    assert [s.running for s in net.status(moved)] == [False, False]


def test_a_data_folder_that_is_a_file_is_named(tmp_path, fake_nodes):
    # QA: `testnet up` said only "node2: File exists"
    a = tmp_path / "a"
    net.up(a, 1, free_base_port(1), timeout=20)
    net.down(a)
    shutil.rmtree(a / "node0")
    (a / "node0").write_text("x")
    with pytest.raises(InputError, match="node 0's data folder is not a folder"):
        net.up(a, timeout=20)


def test_an_interrupt_while_a_node_starts_leaves_no_node_running(tmp_path, fake_nodes, monkeypatch):
    # QA: Ctrl-C during `testnet up` (about 1 run in 5) left a node running: the interrupt
    # came after its process started and before its PID was noted
    import subprocess

    seen: list[int] = []
    real_popen = subprocess.Popen

    def popen(*a, **kw):
        p = real_popen(*a, **kw)
        seen.append(p.pid)
        return p

    def interrupted(pid):
        raise KeyboardInterrupt

    monkeypatch.setattr(subprocess, "Popen", popen)
    monkeypatch.setattr(procs, "_cmdline", interrupted)
    with pytest.raises(KeyboardInterrupt):
        net.up(tmp_path / "net", 1, free_base_port(1), timeout=20)
    assert seen
    assert not any(pid_alive(p) for p in seen)


def test_an_interrupt_after_the_nodes_are_healthy_but_before_the_table_stops_them(
    tmp_path, fake_nodes, monkeypatch
):
    # QA re-check: Ctrl-C in that window printed "interrupted" and left every node running
    from typer.testing import CliRunner

    from cli import main as cli_main
    from cli import testnet_cmd

    def interrupted(d):
        raise KeyboardInterrupt

    monkeypatch.setattr(testnet_cmd, "_table", interrupted)
    d = tmp_path / "net"
    args = ["testnet", "up", "--nodes", "2", "--dir", str(d), "--base-port", str(free_base_port(2))]
    r = CliRunner().invoke(cli_main.app, args)
    assert r.exit_code == 130  # (typer's own exit for an interrupt)
    assert fake_nodes
    assert not any(pid_alive(p) for p in fake_nodes)
    assert [s.running for s in net.status(d)] == [False, False]
