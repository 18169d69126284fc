"""Issue 5 scenarios on a real 4-node testnet: separate processes, real gRPC on 127.0.0.1.

Every scenario ends by checking the chain invariants on every node (tests/testnet/
invariants.py). Waits are conditions with deadlines; the only fixed durations are the
scenario's own (a node paused for 10 s).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from node.errors import LedgerError
from testnet import net
from tests.testnet.harness import RunningTestnet, wait_for
from tests.testnet.invariants import check_all

pytestmark = pytest.mark.slow


def _height(tn: RunningTestnet, i: int) -> int:
    h = tn.heads()[i]
    return -1 if h is None else h[0]


class Load:
    """Submits records continuously (bounded in count and time) to the given nodes.

    With ``hold_after=n`` it stops after ``n`` records until ``release()``: a test can let
    a fault happen between the two parts however fast the nodes take the first."""

    def __init__(
        self,
        tn: RunningTestnet,
        nodes: list[int],
        limit: int = 2000,
        seconds: float = 120,
        hold_after: int | None = None,
    ) -> None:
        self.tn, self.nodes, self.limit, self.seconds = tn, nodes, limit, seconds
        self.hold_after = hold_after
        self.acked: list[bytes] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._released = threading.Event()
        self.held = threading.Event()  # set when the load stops at ``hold_after``
        self._t = threading.Thread(target=self._run, daemon=True)

    def release(self) -> None:
        self._released.set()

    def _run(self) -> None:
        clients = [self.tn.client(i, timeout=15) for i in self.nodes]
        deadline = time.monotonic() + self.seconds
        try:
            for k in range(self.limit):
                if k == self.hold_after:
                    self.held.set()
                    self._released.wait(timeout=max(0.0, deadline - time.monotonic()))
                if self._stop.is_set() or time.monotonic() > deadline:
                    return
                env = self.tn.signed_record(
                    f"urn:epc:id:sgtin:6901234.000002.L{time.time_ns() % 10**12}-{k}"
                )
                try:
                    clients[k % len(clients)].submit(env)
                    self.acked.append(env.record_id)
                except LedgerError as e:
                    self.errors.append(str(e))
        finally:
            for c in clients:
                c.close()

    def __enter__(self) -> Load:
        self._t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._released.set()
        self._t.join(timeout=30)


def test_records_to_different_nodes_end_with_identical_heads(testnet4: RunningTestnet) -> None:
    ids = testnet4.submit_records(40, nodes=[0, 1, 2, 3])
    ids += testnet4.submit_records(4, nodes=[0, 1, 2, 3], wait=True)
    wait_for(lambda: check_all(testnet4.addresses, ids) >= 1, 60, 0.5, "all records committed")
    testnet4.wait_same_head()


def test_sigkill_validator_under_load_then_catch_up(testnet4: RunningTestnet) -> None:
    tn = testnet4
    with Load(tn, [0, 1, 2], limit=3000, hold_after=1500) as load:
        wait_for(lambda: len(load.acked) > 50, 60, 0.1, "load to start")
        net.kill(tn.dir, 3)
        h0 = _height(tn, 0)
        wait_for(lambda: _height(tn, 0) >= h0 + 3, 60, 0.2, "the other three to keep committing")
        assert load.held.wait(60), "the first part of the load was not submitted"
        before = len(load.acked)
        load.release()  # the rest is submitted with validator 3 down
        wait_for(lambda: len(load.acked) > before + 100, 60, 0.1, "submissions to go on")
    net.restart(tn.dir, 3)
    head = tn.wait_same_head(min_height=h0 + 3, timeout=90)
    assert head[0] >= h0 + 3
    wait_for(lambda: check_all(tn.addresses, load.acked), 90, 1.0, "every acked record committed")


def test_killing_the_proposer_moves_to_a_new_round(testnet4: RunningTestnet) -> None:
    tn = testnet4
    g = tn.genesis
    vals = list(g.validators)
    h = _height(tn, 0)
    # the proposer of round 0 at height h+2 (h+1 may already be in flight)
    victim = vals[(h + 2) % len(vals)]
    idx = vals.index(victim)
    wait_for(lambda: _height(tn, 0) >= h + 1, 30, 0.05, "height h+1")
    net.kill(tn.dir, idx)
    other = next(i for i in range(4) if i != idx)
    start = time.monotonic()
    with tn.client(other, timeout=60) as c:
        resp = c.submit(tn.signed_record("urn:epc:id:sgtin:6901234.000003.after-kill"), wait=True)
    elapsed = time.monotonic() - start
    assert resp.committed
    # bound: a few rounds of timeouts (propose 3 s + 1 s per round), not forever
    assert elapsed < 30, f"took {elapsed:.1f}s to commit without the proposer"
    net.restart(tn.dir, idx)
    tn.wait_same_head(timeout=90)
    check_all(tn.addresses, [resp.record_id])


def test_pause_ten_seconds_and_resume(testnet4: RunningTestnet) -> None:
    tn = testnet4
    net.pause(tn.dir, 2)
    try:
        ids = tn.submit_records(30, nodes=[0, 1, 3])
        paused_at = time.monotonic()
        h = _height(tn, 0)
        wait_for(lambda: _height(tn, 0) >= h + 2, 30, 0.2, "progress without node 2")
        remaining = 10 - (time.monotonic() - paused_at)
        if remaining > 0:
            time.sleep(remaining)  # the scenario: node 2 stays paused for 10 s
        # QA: `node status` showed a paused peer as connected for up to 100 s
        wait_for(lambda: not _peer_connected(tn, 0, 2), 30, 0.5, "node 0 to see node 2 silent")
    finally:
        net.resume(tn.dir, 2)
    top = tn.wait_same_head(min_height=h + 2, timeout=90)[0]
    assert top >= h + 2
    wait_for(lambda: check_all(tn.addresses, ids), 60, 1.0, "records on every node")
    wait_for(lambda: _peer_connected(tn, 0, 2), 30, 0.5, "node 0 to see node 2 again")


def _peer_connected(tn: RunningTestnet, at: int, peer: int) -> bool:
    with tn.client(at, timeout=5) as c:
        links = {p.address: p.connected for p in c.status().peers}
    return links[tn.addresses[peer]]


def test_stop_all_and_start_again_keeps_everything(testnet4: RunningTestnet) -> None:
    tn = testnet4
    ids = tn.submit_records(20, nodes=[0, 1, 2, 3], wait=True)
    # a node may acknowledge a block another has not applied yet: wait for all of them
    wait_for(lambda: check_all(tn.addresses, ids), 60, 0.5, "records on every node")
    net.down(tn.dir)
    net.up(tn.dir, timeout=60)
    _ = tn.manifest
    for i in range(4):
        with tn.client(i) as c:
            for rid in ids:
                assert c.get_record(rid).info.log_index < 20
    more = tn.submit_records(5, nodes=[3], wait=True)
    tn.wait_same_head(timeout=60)
    wait_for(lambda: check_all(tn.addresses, ids + more), 60, 0.5, "records on every node")


def test_node_that_missed_5000_records_catches_up_by_sync(testnet4: RunningTestnet) -> None:
    import grpc

    from node.convert import envelope_to_proto
    from proto import services_pb2, services_pb2_grpc

    tn = testnet4
    net.kill(tn.dir, 3)
    envs = [
        envelope_to_proto(tn.signed_record(f"urn:epc:id:sgtin:6901234.000004.s{k}"))
        for k in range(5000)
    ]
    ids: list[bytes] = []
    with grpc.insecure_channel(tn.addresses[0]) as ch:
        stub = services_pb2_grpc.LedgerStub(ch)
        batches = [
            services_pb2.SubmitBatch(envelopes=envs[i : i + 250], batch_id=i, wait=True)
            for i in range(0, len(envs), 250)
        ]
        for res in stub.SubmitStream(iter(batches), timeout=300):
            if res.committed:
                ids.extend(r.record_id for r in res.results if r.code == 0)
            else:
                assert all(r.code == 0 for r in res.results), res.results[0].message
    assert len(ids) == 5000
    net.restart(tn.dir, 3)
    tn.wait_same_head(timeout=120)
    check_all(tn.addresses, ids)


def _sees(tn: RunningTestnet, i: int, address: str) -> bool:
    with tn.client(i, timeout=2) as c:
        return any(p.address == address and p.connected for p in c.status().peers)


def test_a_restarted_peer_is_redialled_within_seconds(testnet4: RunningTestnet) -> None:
    """gRPC's own reconnect backoff grows to 120 s, and an RPC on a channel in backoff fails
    without dialling: one node saw a restarted peer again only 2.5 minutes later. The peer
    channels' backoff is capped at 1 s (``node.peers.GRPC_OPTIONS``)."""
    tn = testnet4
    gone = tn.addresses[1]
    net.kill(tn.dir, 1)
    wait_for(lambda: not _sees(tn, 0, gone), 30, 0.1, "node 0 to see node 1 gone")
    time.sleep(25)  # the scenario's own duration: down for 25 s (the default backoff: ~27 s)
    net.restart(tn.dir, 1)
    wait_for(
        lambda: all(_sees(tn, i, gone) for i in (0, 2, 3)),
        10,
        0.1,
        "every other node to reconnect to the restarted node 1",
    )


def test_a_non_validator_node_follows_the_chain(testnet4: RunningTestnet, tmp_path) -> None:
    """A node no validator dials (a member's own follower: config peers = the validators)
    synced once and then stayed at that height: it learnt peer heights only on connecting.
    It now asks its peers' heights every second and keeps following."""
    from node.client import LedgerClient
    from node.config import NodeConfig
    from testnet import procs
    from tests.testnet.harness import free_base_port

    tn = testnet4
    tn.submit_records(5, nodes=(0,), wait=True)
    address = f"127.0.0.1:{free_base_port(1)}"
    cfg = NodeConfig(
        member="farm",
        key_file=tn.dir / "keys" / "farm.key",
        genesis=tn.dir / "genesis.json",
        data_dir=tmp_path / "follower",
        listen=address,
        peers=tuple(tn.addresses),
    )
    path = tmp_path / "follower.toml"
    path.write_text(cfg.to_toml())
    pid = procs.start_node(path, tmp_path / "follower.log", tmp_path)
    try:

        def height() -> int:
            with LedgerClient(address, timeout=2) as c:
                return int(c.status().height)

        for round_ in range(3):  # after its first sync, twice more
            if round_:
                tn.submit_records(5, nodes=(round_,), wait=True)
            target = _height(tn, 0)
            wait_for(lambda: height() >= target, 30, 0.1, f"the follower at height {target}")
    finally:
        procs.stop(pid, path)


def _twin_config(node: Any, path: Path, data: Path, *, dial: bool) -> Path:
    """A copy of ``node``'s config on a free port with its own data folder: a standby of
    the same validator; ``dial``: it lists the original among its peers."""
    from tests.testnet.harness import free_base_port

    text = (
        node.config.read_text()
        .replace('data_dir = "../node3"', f'data_dir = "{data}"')
        .replace(f'listen = "{node.address}"', f'listen = "127.0.0.1:{free_base_port(1)}"')
        .replace('"../', f'"{node.config.parent.parent}/')
    )
    path.write_text(text.replace("peers = [", f'peers = ["{node.address}", ') if dial else text)
    return path


def _start(config: Path, *extra: str) -> subprocess.Popen[str]:
    """``suyuan node start --config CONFIG [EXTRA...]``, its output piped."""
    suyuan = str(Path(sys.executable).with_name("suyuan"))
    return subprocess.Popen(
        [suyuan, "node", "start", "--config", str(config), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(proc: subprocess.Popen[str]) -> str:
    """Its stderr once it exits (within 60 s; else it is killed)."""
    try:
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    return err


def test_a_second_process_with_a_validators_key_stops_and_signs_nothing(testnet4, tmp_path):
    """QA: a standby started with validator3's key and its own (empty) data folder logged
    the danger, kept voting through the other peers, and within seconds the real nodes held
    valid evidence of a double vote against validator3. It must stop before it votes."""
    tn = testnet4
    tn.submit_records(5, wait=True)
    node3 = tn.manifest.nodes[3]
    clone = _twin_config(node3, tmp_path / "clone.toml", tmp_path / "clone-data", dial=True)
    proc = _start(clone)
    err = _finish(proc)
    assert proc.returncode == 2, err
    # (the peers are asked before the node starts: recent blocks carry validator3's
    # signature, and the clone's store holds no sign state; ``node.twin``)
    assert "carries 'validator3''s signature" in err
    assert "run only one of them" in err.strip().splitlines()[-1]
    tn.submit_records(3, wait=True)  # the chain goes on, validator3 (the real one) voting
    for i in range(4):
        with tn.client(i) as c:
            assert c.list_evidence() == [], f"node {i} holds evidence"


def test_a_standby_that_never_dials_its_twin_refuses_to_start_and_a_resync_needs_its_flag(
    testnet4, tmp_path
):
    """QA (twice): a copy of validator3's config on another port (its peers the other
    three, as in the original) never dialled validator3, so the handshake proof never ran;
    it logged a warning and signed on, and the original was the one that stopped on the
    evidence of a double vote. A validator whose store holds no sign state now asks its
    peers first: recent blocks carry its signature, so it refuses to start, signing
    nothing. A real resync (the old process stopped, its store moved away) says so with
    --resync, and the node syncs and votes again."""
    tn = testnet4
    tn.submit_records(3, wait=True)
    node3 = tn.manifest.nodes[3]
    clone = _twin_config(node3, tmp_path / "standby.toml", tmp_path / "standby-data", dial=False)
    assert node3.address not in clone.read_text()
    err = _finish(_start(clone))
    assert "carries 'validator3''s signature" in err, err
    assert "start it with --resync" in err.strip().splitlines()[-1]
    assert "connected to" not in err, err  # (it stopped before it linked, synced or voted)
    tn.submit_records(3, wait=True)  # the original goes on voting
    for i in range(4):
        with tn.client(i) as c:
            assert c.list_evidence() == [], f"node {i} holds evidence"
    # a resync: the old process stopped, its store moved away, the others a block on
    net.kill(tn.dir, 3)
    shutil.move(str(node3.data_dir / "store"), str(tmp_path / "old-store"))
    h = _height(tn, 0)
    tn.submit_records(2, wait=True, nodes=[0, 1, 2])
    wait_for(lambda: _height(tn, 0) > h, 60, 0.2, "the other three to commit a block")
    proc = _start(node3.config)
    err = _finish(proc)
    assert proc.returncode == 2, err
    assert "start it with --resync" in err.strip().splitlines()[-1]
    assert not (node3.data_dir / "store").exists()  # (the store it made is gone; QA-W)
    proc = _start(node3.config, "--resync")
    try:
        head = tn.wait_same_head(min_height=_height(tn, 0), timeout=90)
        tn.submit_records(3, wait=True)
        assert tn.wait_same_head(min_height=head[0] + 1, timeout=90)
        assert proc.poll() is None
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.communicate(timeout=15)
    for i in range(3):
        with tn.client(i) as c:
            assert c.list_evidence() == [], f"node {i} holds evidence"


def test_a_validators_store_restored_from_a_backup_refuses_to_sign(testnet4, tmp_path):
    """Review: a store restored from an older backup holds an older sign state, and the sign
    guard then allows positions the key has signed since; had the sync not brought those
    blocks before the first timeout, it would have signed a second vote at a height. At
    start it now asks its peers: a recent block above its sign state carries its signature,
    so it refuses (exit 2). Moved away and resynced, it votes again, and no node holds
    evidence."""
    tn = testnet4
    tn.submit_records(2, wait=True)
    node2 = tn.manifest.nodes[2]
    net.kill(tn.dir, 2)
    backup = tmp_path / "backup-store"
    shutil.copytree(node2.data_dir / "store", backup)
    wait_for(lambda: not net.busy_addresses([node2.address]), 30, 0.1, "node 2's port freed")
    net.restart(tn.dir, 2)
    net.kill(tn.dir, 3)  # every block now needs validator2's precommit
    h = _height(tn, 0)
    tn.submit_records(3, wait=True, nodes=[0, 1, 2])
    wait_for(lambda: _height(tn, 2) > h, 60, 0.2, "a block validator2 precommitted")
    net.kill(tn.dir, 2)
    shutil.rmtree(node2.data_dir / "store")
    shutil.copytree(backup, node2.data_dir / "store")
    wait_for(lambda: not net.busy_addresses([node2.address]), 30, 0.1, "node 2's port freed")
    proc = _start(node2.config)
    err = _finish(proc)
    assert proc.returncode == 2, err
    assert "has signed only up to height" in err, err
    assert "start with --resync" in err.strip().splitlines()[-1]
    net.restart(tn.dir, 3)
    shutil.rmtree(node2.data_dir / "store")
    net.restart(tn.dir, 2, resync=True)
    tn.submit_records(2, wait=True)
    head = tn.wait_same_head(min_height=h + 1, timeout=90)
    assert head[0] > h
    for i in range(4):
        with tn.client(i) as c:
            assert c.list_evidence() == [], f"node {i} holds evidence"


def test_a_checkpoint_without_a_quorum_of_answers_is_exit_5_not_a_verification_failure(
    testnet4,
):
    # QA: with two of four validators down, `checkpoint` said "checkpoint note: 2/2 valid
    # signatures, need 3", exit 3 (verification failed), and wrote nothing
    from tests.cli.helpers import suyuan

    tn = testnet4
    tn.submit_records(2, wait=True)
    net.kill(tn.dir, 2)
    net.kill(tn.dir, 3)
    out = tn.dir / "cp.json"
    r = suyuan("checkpoint", "--out", str(out), cwd=tn.dir, env={"SUYUAN_TESTNET": str(tn.dir)})
    assert r.returncode == 5, r.stderr
    [line] = r.stderr.strip().splitlines()
    assert "checkpoint note: 2 of 4 nodes did not sign, and 3 validator signatures are" in line
    assert line.endswith("(--no-note saves the checkpoint of the certified header alone)")
    assert not out.exists()
    # QA: `node status` did not say the chain had lost its quorum
    env = {"SUYUAN_TESTNET": str(tn.dir)}

    def below() -> str:
        r = suyuan("node", "status", cwd=tn.dir, env=env)
        return r.stdout if "as this node sees them: 2 of 4, under the" in r.stdout else ""

    assert "under the quorum of 3: no block can commit" in wait_for(below, 30, 0.5, "2 of 4")
    st = json.loads(suyuan("node", "status", "--json", cwd=tn.dir, env=env).stdout)
    assert (st["validators"], st["validators_answering"], st["quorum"]) == (4, 2, 3)
    # QA-P: a submit without --wait said "accepted (not yet committed)" and no more
    draft = tn.dir / "q.json"
    draft.write_text(
        json.dumps(tn.signed_record("urn:epc:id:sgtin:6901234.000001.q1").to_json_dict())
    )
    r = suyuan("record", "submit", "--envelope", str(draft), cwd=tn.dir, env=env)
    assert r.returncode == 0, r.stderr
    assert "not committed: the node sees 2 of 4 validators answering, under the quorum" in r.stderr
    assert "it commits when the quorum is back" in r.stderr
