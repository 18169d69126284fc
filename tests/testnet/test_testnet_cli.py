"""End to end against real node processes: the `suyuan testnet` commands through the CLI,
and bad submissions refused with their gRPC status and stored nowhere.

Slow: each test starts real 4-node testnets (``-m slow``; CI runs them).
"""

from __future__ import annotations

import json
from pathlib import Path

import grpc
import pytest

from node.envelope import PAYLOAD_TYPE, Envelope, Signature
from node.errors import LedgerError, NotFoundError
from node.keys import KeyPair
from node.records import make_record, sign_record
from testnet import net
from testnet.manifest import Manifest
from tests.cli.helpers import suyuan
from tests.testnet.harness import (
    RunningTestnet,
    commissioning_event,
    free_base_port,
    pid_alive,
    wait_for,
)

pytestmark = pytest.mark.slow


def ok(res):
    assert res.returncode == 0, f"exit {res.returncode}\nstdout: {res.stdout}\nstderr: {res.stderr}"
    return res


def cli_json(*args, cwd, env=None, timeout=90):
    return json.loads(ok(suyuan(*args, cwd=cwd, env=env, timeout=timeout)).stdout)


@pytest.fixture
def cli_dir(tmp_path):
    """A testnet folder for CLI tests; whatever the test leaves running is stopped."""
    d = tmp_path / "net"
    seen: set[int] = set()
    yield d, seen
    if (d / "testnet.json").exists():
        seen.update(n.pid for n in Manifest.load(d).nodes if n.pid)
        net.down(d, timeout=10)
    alive = [p for p in seen if pid_alive(p)]
    assert not alive, f"still alive after down: {alive}"


def test_testnet_lifecycle_and_faults_through_the_cli(cli_dir, tmp_path):
    d, seen = cli_dir
    env = {"SUYUAN_TESTNET": str(d)}
    port = free_base_port(4)

    up = cli_json(
        "testnet",
        "up",
        "--nodes",
        "4",
        "--dir",
        str(d),
        "--base-port",
        str(port),
        "--json",
        cwd=tmp_path,
    )
    assert [n["address"] for n in up["nodes"]] == [f"127.0.0.1:{port + i}" for i in range(4)]
    assert all(n["running"] and n["pid"] for n in up["nodes"])
    seen.update(n["pid"] for n in up["nodes"])
    for i in range(4):
        assert (d / "keys" / f"validator{i}.key").exists()
    for name in (
        "farm",
        "slaughterhouse",
        "processor",
        "distributor",
        "retailer",
        "inspector",
        "regulator",
    ):
        assert (d / "keys" / f"{name}.key").exists()

    again = suyuan("testnet", "up", "--nodes", "4", "--dir", str(d), cwd=tmp_path)
    assert again.returncode != 0
    assert "already running" in again.stderr

    # submit through the default node (from $SUYUAN_TESTNET), wait for the commit
    event = tmp_path / "event.json"
    event.write_text(json.dumps(commissioning_event("urn:epc:id:sgtin:6901234.000001.CLI-1")))
    sub = cli_json(
        "record",
        "submit",
        str(event),
        "--key",
        str(d / "keys" / "farm.key"),
        "--wait",
        "--json",
        cwd=tmp_path,
        env=env,
    )
    assert len(sub["record_id"]) == 64
    assert sub["height"] >= 1
    assert sub["log_index"] == 0
    got = cli_json("record", "get", sub["record_id"], "--json", cwd=tmp_path, env=env)
    assert (got["record_id"], got["height"], got["log_index"]) == (
        sub["record_id"],
        sub["height"],
        0,
    )
    assert got["author"] == "farm"

    st = cli_json("node", "status", "--json", cwd=tmp_path, env=env)
    assert st["member"] == "validator0"
    assert st["log_size"] == 1
    assert len(st["peers"]) == 3

    # kill node 1: 3 of 4 still commit
    pid1 = up["nodes"][1]["pid"]
    ok(suyuan("testnet", "kill", "1", "--dir", str(d), cwd=tmp_path))
    assert not pid_alive(pid1)
    res = suyuan("testnet", "status", "--dir", str(d), "--json", cwd=tmp_path)
    assert res.returncode == 5, res.stderr
    assert res.stderr.strip().endswith(": node 1 stopped"), res.stderr
    status = json.loads(res.stdout)
    assert (status[1]["running"], status[1]["height"]) == (False, None)
    assert all(status[i]["running"] for i in (0, 2, 3))
    for key in ("index", "address", "pid", "running", "height", "head_hash"):
        assert key in status[0]
    event.write_text(json.dumps(commissioning_event("urn:epc:id:sgtin:6901234.000001.CLI-2")))
    sub2 = cli_json(
        "record",
        "submit",
        str(event),
        "--key",
        str(d / "keys" / "farm.key"),
        "--node",
        up["nodes"][3]["address"],
        "--wait",
        "--json",
        cwd=tmp_path,
        env=env,
    )
    assert sub2["log_index"] == 1

    # pause node 2: it is reported paused and mute, then resumes
    ok(suyuan("testnet", "pause", "2", "--dir", str(d), cwd=tmp_path))
    res = suyuan("testnet", "status", "--dir", str(d), "--json", cwd=tmp_path)
    status = json.loads(res.stdout)  # printed in full, then the exit says "not all healthy"
    assert (status[2]["running"], status[2]["paused"], status[2]["height"]) == (True, True, None)
    assert res.returncode == 5, res.stderr
    assert res.stderr.strip().endswith("node 2 paused"), res.stderr
    table = suyuan("testnet", "status", "--dir", str(d), cwd=tmp_path)
    assert table.returncode == 5
    assert "paused" in table.stdout
    assert "running" in table.stdout
    ok(suyuan("testnet", "resume", "2", "--dir", str(d), cwd=tmp_path))

    # QA: a genesis edited while the nodes run made restart stop a healthy node that then
    # could not start; now restart refuses first, leaving node 3 running
    genesis = d / "genesis.json"
    original = genesis.read_text()
    edited = json.loads(original)
    edited["chain_id"] = "edited-chain"
    genesis.write_text(json.dumps(edited))
    res = suyuan("testnet", "restart", "3", "--dir", str(d), cwd=tmp_path)
    assert res.returncode == 2, res.stderr
    assert "changed since node 3 started" in res.stderr
    assert pid_alive(status[3]["pid"])
    genesis.write_text(original)

    # restart node 1: it comes back with its data and catches up
    ok(suyuan("testnet", "restart", "1", "--dir", str(d), cwd=tmp_path, timeout=120))
    tn = RunningTestnet(d)
    seen.update(n.pid for n in tn.manifest.nodes if n.pid)
    tn.wait_same_head(min_height=sub2["height"], timeout=60)
    # node status shows its peers' heights as they go on, not as each link first saw them
    # (QA: every peer stayed at the height of its connection, 50 blocks behind)
    addr0 = tn.addresses[0]
    target = max(h[0] for h in tn.heads() if h) + 3  # idle: empty blocks go on being made

    def peers_followed() -> bool:
        st = cli_json("node", "status", "--node", addr0, "--json", cwd=tmp_path)
        return st["height"] >= target and all(p["height"] >= target - 1 for p in st["peers"])

    wait_for(peers_followed, 60, 0.5, "node 0's peer heights to follow the chain")

    # an envelope signed elsewhere, with one bit of its signature flipped: refused (exit 3)
    env_file = tmp_path / "bad.json"
    good = tn.signed_record("urn:epc:id:sgtin:6901234.000001.CLI-3")
    sig = bytearray(good.signatures[0].sig)
    sig[5] ^= 0x01
    bad = Envelope(good.payload, good.payload_type, (Signature("farm", bytes(sig)),))
    env_file.write_text(bad.to_json())
    res = suyuan("record", "submit", "--envelope", str(env_file), "--wait", cwd=tmp_path, env=env)
    assert res.returncode == 3, res.stderr
    assert res.stderr.startswith("error: ")
    assert len(res.stderr.strip().splitlines()) == 1

    # down stops everything; up again restarts the same chain with its data
    last = cli_json("testnet", "status", "--dir", str(d), "--json", cwd=tmp_path)
    seen.update(n["pid"] for n in last if n["pid"])
    ok(suyuan("testnet", "down", "--dir", str(d), cwd=tmp_path))
    assert not [p for p in seen if pid_alive(p)]
    res = suyuan("testnet", "status", "--dir", str(d), "--json", cwd=tmp_path)
    assert res.returncode == 5
    assert not any(n["running"] for n in json.loads(res.stdout))
    assert "node 0 stopped, node 1 stopped" in res.stderr

    up2 = cli_json("testnet", "up", "--dir", str(d), "--json", cwd=tmp_path)
    seen.update(n["pid"] for n in up2["nodes"])
    got = cli_json("record", "get", sub2["record_id"], "--json", cwd=tmp_path, env=env)
    assert got["log_index"] == 1
    # a retry of a committed record (after an uncertain outcome) is told where it is, exit 0
    # (QA: exit 1 "already committed", no JSON: retry scripts had to parse stderr)
    again = tmp_path / "again.json"
    again.write_text(json.dumps(got["envelope"]))
    retry = cli_json("record", "submit", "--envelope", str(again), "--wait", "--json",
                     cwd=tmp_path, env=env)  # fmt: skip
    assert (retry["committed"], retry["already_committed"]) == (True, True)
    assert (retry["height"], retry["log_index"]) == (got["height"], 1)
    ok(suyuan("testnet", "down", "--dir", str(d), cwd=tmp_path))
    assert not [p for p in seen if pid_alive(p)]


def test_up_refuses_the_repository_testnet_package(tmp_path):
    root = Path(__file__).resolve().parents[2]
    res = suyuan("testnet", "up", "--nodes", "4", cwd=root, env={"SUYUAN_TESTNET": ""})
    assert res.returncode == 2
    assert "holds no testnet" in res.stderr
    assert not (root / "testnet" / "testnet.json").exists()


def test_up_with_a_bad_gs1_prefix_binding_is_one_line_and_starts_nothing(tmp_path):
    d = tmp_path / "net"
    res = suyuan(
        "testnet", "up", "--nodes", "1", "--dir", str(d), "--base-port", "31950",
        "--gs1-prefix", "processor=6903456", "--gs1-prefix", "nobody=6901234", cwd=tmp_path,
    )  # fmt: skip
    assert res.returncode == 2, res.stderr
    assert res.stderr.startswith("error: --gs1-prefix 'nobody=6901234': 'nobody' is not a member")
    assert len(res.stderr.strip().splitlines()) == 1
    assert not (d / "testnet.json").exists()
    assert not (d / "genesis.json").exists()
    assert not (d / "keys").exists()


# ---------------------------------------------------------------------- bad submissions


def _malformed(tn: RunningTestnet) -> Envelope:
    key = tn.key("farm")
    env = Envelope(b"\xff\xfe this is not a record", PAYLOAD_TYPE)
    return env.with_signature("farm", key.sign(env.signed_bytes()))


def _flipped(tn: RunningTestnet) -> Envelope:
    good = tn.signed_record("urn:epc:id:sgtin:6901234.000001.BAD-SIG")
    sig = bytearray(good.signatures[0].sig)
    sig[0] ^= 0x80
    return Envelope(good.payload, good.payload_type, (Signature("farm", bytes(sig)),))


def _non_member(tn: RunningTestnet) -> Envelope:
    mallory = KeyPair.generate("mallory")
    rec = make_record(
        tn.genesis, "mallory", commissioning_event("urn:epc:id:sgtin:6901234.000001.MALLORY")
    )
    return sign_record(rec, mallory)


def _oversized(tn: RunningTestnet) -> Envelope:
    rec = make_record(
        tn.genesis,
        "farm",
        commissioning_event("urn:epc:id:sgtin:6901234.000001.HUGE"),
        attributes={"blob": "x" * (tn.genesis.consensus.max_record_bytes + 1)},
    )
    return sign_record(rec, tn.key("farm"))


def _refusal(tn: RunningTestnet, env: Envelope) -> grpc.StatusCode:
    with tn.client(0) as c, pytest.raises(LedgerError) as ei:
        c.submit(env, wait=True)
    cause = ei.value.__cause__
    assert isinstance(cause, grpc.RpcError), ei.value
    return cause.code()


@pytest.mark.parametrize(
    ("make", "code"),
    [
        (_malformed, grpc.StatusCode.INVALID_ARGUMENT),
        (_flipped, grpc.StatusCode.UNAUTHENTICATED),
        (_non_member, grpc.StatusCode.PERMISSION_DENIED),
        (_oversized, grpc.StatusCode.INVALID_ARGUMENT),
    ],
    ids=["malformed-bytes", "flipped-signature-bit", "non-member-signer", "oversized"],
)
def test_bad_submission_is_refused_with_its_code_and_stored_nowhere(testnet4, make, code):
    tn: RunningTestnet = testnet4
    bad = make(tn)
    assert _refusal(tn, bad) == code
    _assert_log_is(tn, good=tn.submit_records(1, wait=True), absent=[bad.record_id])


def test_replay_is_refused_already_exists_and_stored_once(testnet4):
    tn: RunningTestnet = testnet4
    env = tn.signed_record("urn:epc:id:sgtin:6901234.000001.REPLAY")
    with tn.client(1) as c:
        first = c.submit(env, wait=True)
    assert first.committed
    # node 0 may apply that block a little later (it may have fetched the record for the
    # proposal rather than held it pending): the replay is of a record it has committed
    with tn.client(0) as c0:
        wait_for(lambda: c0.status().height >= first.height, 30, 0.02, "node 0 to apply it")
    assert _refusal(tn, env) == grpc.StatusCode.ALREADY_EXISTS
    _assert_log_is(tn, good=[env.record_id, *tn.submit_records(1, wait=True)], absent=[])


def _assert_log_is(tn: RunningTestnet, good: list[bytes], absent: list[bytes]) -> None:
    """Every node holds exactly the ``good`` records and none of ``absent``."""
    n = len(tn.addresses)

    def all_have_them() -> bool:
        for i in range(n):
            with tn.client(i, timeout=2) as c:
                if c.status().log_size != len(good):
                    return False
                for rid in good:
                    c.get_record(rid)
        return True

    wait_for(all_have_them, 30, 0.2, f"all nodes to hold exactly {len(good)} records")
    for i in range(n):
        with tn.client(i, timeout=2) as c:
            for rid in absent:
                with pytest.raises(NotFoundError):
                    c.get_record(rid)
