"""Whole-chain audit over genuine blocks: a healthy chain passes; each kind of damage is
reported with the height at fault; a rewritten history is caught against a checkpoint saved
by an earlier audit, naming the first differing height."""

from __future__ import annotations

import gc
import multiprocessing

import pytest

from node.audit import audit_blocks
from node.verify import SavedCheckpoint, parse_checkpoint_json
from proto import types_pb2
from tests.proofs.chainbuilder import ChainBuilder


def codes(n: int, prefix: str = "urn:epc:id:sgtin:0614141.107346.") -> list[str]:
    return [f"{prefix}{i}" for i in range(n)]


def build(path, diverge_at: int | None = None, blocks: int = 6) -> ChainBuilder:
    """``blocks`` blocks of two commissions each; from ``diverge_at`` on, other records."""
    b = ChainBuilder(path)
    for h in range(1, blocks + 1):
        salt = "fork" if diverge_at is not None and h >= diverge_at else ""
        b.commit([b.commission(c, salt=salt) for c in codes(2, f"urn:x:{h}:{salt}:")])
    return b


def test_healthy_chain_passes(chain):
    report = audit_blocks(chain.committed_blocks(), chain.genesis)
    assert report.ok, report.error
    assert (report.blocks, report.records, report.log_size) == (3, 6, 6)
    assert report.log_root == chain.store.head().log_root
    d = report.to_dict()
    assert d["ok"] is True
    assert d["failed_height"] is None


def test_a_block_decided_in_a_later_round_passes_and_an_earlier_one_fails(tmp_path):
    # (a re-proposed valid value: all four nodes' audits failed on such an honest block)
    b = ChainBuilder(tmp_path / "a")
    b.commit([b.commission("urn:x:r:1")])
    b.commit([b.commission("urn:x:r:2")], round_=0, decided_round=2)
    report = audit_blocks(b.committed_blocks(), b.genesis)
    assert report.ok, report.error
    bad = ChainBuilder(tmp_path / "b")
    bad.commit([bad.commission("urn:x:r:1")], round_=1, decided_round=0)
    report = audit_blocks(bad.committed_blocks(), bad.genesis)
    assert not report.ok
    assert "certificate round 0 precedes the block's 1" in str(report.error)


def test_saved_checkpoint_round_trips_and_passes_again(chain):
    report = audit_blocks(chain.committed_blocks(), chain.genesis)
    saved = report.saved_checkpoint()
    again = parse_checkpoint_json(saved.to_json())
    assert again.block_hashes == saved.block_hashes
    assert again.checkpoint == saved.checkpoint
    assert audit_blocks(chain.committed_blocks(), chain.genesis, again).ok


def test_forked_history_fails_naming_the_first_differing_height(tmp_path):
    a = build(tmp_path / "a")
    b = build(tmp_path / "b", diverge_at=3, blocks=7)
    try:
        saved = audit_blocks(a.committed_blocks(), a.genesis).saved_checkpoint()
        good = audit_blocks(b.committed_blocks(), b.genesis)
        assert good.ok  # the fork is internally valid ...
        report = audit_blocks(b.committed_blocks(), b.genesis, saved)
        assert not report.ok  # ... but not the history the checkpoint saw
        assert report.error is not None
        assert report.error.height == 3
        assert "first differing height 3" in str(report.error)
        # a plain checkpoint (no block hashes) still detects it at its own height
        plain = SavedCheckpoint(saved.checkpoint)
        report = audit_blocks(b.committed_blocks(), b.genesis, plain)
        assert report.error is not None
        assert report.error.height == 6
        assert "rewritten" in str(report.error)
    finally:
        a.close()
        b.close()


def test_truncated_history_fails(tmp_path):
    a = build(tmp_path / "a")
    try:
        blocks = a.committed_blocks()
        saved = audit_blocks(blocks, a.genesis).saved_checkpoint()
        report = audit_blocks(blocks[:4], a.genesis, saved)
        assert report.error is not None
        assert "truncated" in str(report.error)
    finally:
        a.close()


def damaged(chain: ChainBuilder, damage: str) -> list[types_pb2.CommittedBlock]:
    """The chain's committed blocks with ``damage`` done to block 2."""
    blocks = chain.committed_blocks()
    if damage == "skip":
        del blocks[1]
    elif damage == "swap":
        blocks[1], blocks[2] = blocks[2], blocks[1]
    elif damage == "prev-hash":
        h = types_pb2.BlockHeader.FromString(blocks[1].block.header)
        h.prev_block_hash = bytes(32)
        blocks[1].block.header = h.SerializeToString()
    elif damage == "cert-2f":
        del blocks[1].certificate.signatures[2:]
    elif damage == "bad-envelope-sig":
        blocks[1].block.envelopes[0].signatures[0].sig = bytes(64)
    elif damage == "drop-envelope":
        del blocks[1].block.envelopes[1]
    return blocks


@pytest.mark.parametrize(
    ("damage", "step", "height"),
    [
        ("skip", "header", 2),
        ("swap", "header", 2),
        ("prev-hash", "link", 2),
        ("cert-2f", "certificate", 2),
        ("bad-envelope-sig", "envelope", 2),
        ("drop-envelope", "contents", 2),
    ],
)
def test_damage_is_reported_with_its_height(chain, damage, step, height):
    blocks = damaged(chain, damage)
    report = audit_blocks(blocks, chain.genesis)
    assert report.error is not None
    assert report.error.step == step, str(report.error)
    assert report.error.height == height


def test_rule_violation_in_a_certified_block_is_caught(tmp_path):
    """A block whose records break custody rules (a code commissioned twice), certified by a
    Byzantine quorum, fails the rules replay."""
    from node import merkle
    from node.chain import records_hash
    from node.convert import envelope_to_proto
    from node.envelope import envelope_leaf_bytes
    from proto import types_pb2
    from tests.proofs.chainbuilder import T0_MS

    b = ChainBuilder(tmp_path / "s")
    try:
        e1 = b.commission("urn:dup:1", salt="a")
        e2 = b.commission("urn:dup:1", salt="b")
        leaves = [merkle.leaf_hash(envelope_leaf_bytes(e)) for e in (e1, e2)]
        header = types_pb2.BlockHeader(
            chain_id=b.genesis.chain_id,
            genesis_hash=b.genesis.hash,
            height=1,
            time_ms=T0_MS,
            proposer=b.validators.proposer(1, 0),
            prev_block_hash=bytes(32),
            log_size=2,
            log_root=merkle.root(leaves),
            num_records=2,
            records_hash=records_hash([e1.record_id, e2.record_id]),
        )
        raw = header.SerializeToString()
        import hashlib

        cb = types_pb2.CommittedBlock(
            block=types_pb2.Block(
                header=raw, envelopes=[envelope_to_proto(e1), envelope_to_proto(e2)]
            ),
            certificate=b.certify(1, 0, hashlib.sha256(raw).digest()),
        )
        report = audit_blocks([cb], b.genesis)
        assert report.error is not None
        assert report.error.step == "rules"
        assert report.error.height == 1
    finally:
        b.close()


@pytest.mark.parametrize("threshold", [0, 3])
@pytest.mark.parametrize("damage", ["none", "bad-envelope-sig", "drop-envelope", "cert-2f"])
def test_worker_processes_report_exactly_what_threads_do(chain, damage, threshold):
    """On worker processes (from the first block with threshold 0; from block 2 with 3, so
    the audit switches mid-chain), an audit ends in the same report, error message
    included, and leaves no process behind."""
    in_threads = audit_blocks(damaged(chain, damage), chain.genesis, processes=0)
    in_procs = audit_blocks(
        damaged(chain, damage), chain.genesis, processes=1, process_threshold=threshold
    )
    assert multiprocessing.active_children() == []
    assert gc.isenabled()  # the audit's pause of the GC ended with it
    assert str(in_procs.error) == str(in_threads.error)
    assert in_procs.to_dict() | {"seconds": 0, "records_per_second": 0} == (
        in_threads.to_dict() | {"seconds": 0, "records_per_second": 0}
    )
    assert in_procs.ok == (damage == "none")


def test_worker_processes_stop_when_the_source_fails(chain):
    """An error of the block source (a node going away, Ctrl-C) propagates, and every
    worker process is stopped first."""
    blocks = chain.committed_blocks()

    def source():
        yield from blocks[:2]
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        audit_blocks(source(), chain.genesis, processes=2, process_threshold=0)
    assert multiprocessing.active_children() == []
    assert gc.isenabled()


def test_worker_processes_stop_when_interrupted_while_finishing(chain):
    """Ctrl-C while the queued blocks are replayed (here: in the progress callback, which
    runs in ``finish`` for a chain shorter than the window) also stops every worker."""

    def tick(report):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        audit_blocks(
            chain.committed_blocks(), chain.genesis, processes=1, process_threshold=0, on_block=tick
        )
    assert multiprocessing.active_children() == []
    assert gc.isenabled()


def test_records_cross_the_process_boundary_whole():
    """Worker processes send records back as field tuples: every field survives."""
    from node.audit import _record_fields
    from node.records import TraceRecord

    r = TraceRecord(
        "chain",
        "ab" * 32,
        "farm",
        "0123456789",
        "meat",
        {"type": "ObjectEvent", "epcList": ["urn:x:1"]},
        "farm",
        "plant",
        {"grade": "A"},
        {"price": "c2VhbGVk"},
        ({"name": "cert.pdf", "sha256": "00" * 32},),
    )
    assert TraceRecord(*_record_fields(r)) == r


def test_a_damaged_saved_hash_is_told_from_a_rewritten_log(tmp_path):
    # QA: one flipped digit in a saved block hash read "the log was rewritten (first
    # differing height 6)", though the chain reached the checkpoint's certified header
    import dataclasses

    import pytest

    from node.errors import VerificationError

    a = build(tmp_path / "a")
    try:
        blocks = a.committed_blocks()
        saved = audit_blocks(blocks, a.genesis).saved_checkpoint()
        hashes = list(saved.block_hashes)
        hashes[2] = bytes(32)
        bad = dataclasses.replace(saved, block_hashes=tuple(hashes))
        with pytest.raises(VerificationError, match=r"block_hashes are damaged \(height 3"):
            audit_blocks(blocks, a.genesis, bad)
    finally:
        a.close()
