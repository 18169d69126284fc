"""`suyuan verify` and `suyuan evidence verify` as a user runs them: offline, exit codes,
one error line naming the first failed step."""

from __future__ import annotations

import json

import pytest
from google.protobuf import json_format

from consensus.evidence import vote_evidence
from consensus.messages import VoteType
from consensus.signing import sign_vote
from node.verify import bundle_to_json, checkpoint_to_json
from proto import services_pb2
from tests.cli.helpers import suyuan


def write(chain, tmp_path, bundle, name="b.json"):
    (tmp_path / "genesis.json").write_text(chain.genesis.to_json())
    p = tmp_path / name
    p.write_text(bundle_to_json(bundle))
    return p


def test_verify_passes_and_reports_each_step(chain, tmp_path):
    p = write(chain, tmp_path, chain.bundle(chain.hand))
    r = suyuan("verify", str(p), "--genesis", "genesis.json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    for n in range(1, 7):
        assert f"({n}) " in r.stdout
    assert "valid: record" in r.stdout


def test_verify_fails_with_one_line_naming_the_step(chain, tmp_path):
    b = chain.bundle(chain.envs[0])
    b.inclusion_path[0] = bytes(32)
    p = write(chain, tmp_path, b)
    r = suyuan("verify", str(p), "--genesis", "genesis.json", cwd=tmp_path)
    assert r.returncode == 3
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "step 3 (inclusion) failed" in lines[0]


def test_verify_record_names_the_record_the_bundle_must_prove(chain, tmp_path):
    # QA-U: a bundle names no record id of its own: a valid proof of record A, shown as
    # record B, exited 0, and only the last line told the two apart
    import hashlib

    a, b = chain.envs[0], chain.envs[1]
    p = write(chain, tmp_path, chain.bundle(a))
    ida = hashlib.sha256(a.payload).hexdigest()
    idb = hashlib.sha256(b.payload).hexdigest()
    ok = suyuan("verify", str(p), "--genesis", "genesis.json", "--record", ida, cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    r = suyuan("verify", str(p), "--genesis", "genesis.json", "--record", idb, cwd=tmp_path)
    assert r.returncode == 3
    assert r.stderr.strip().splitlines() == [
        f"error: {p}: it proves record {ida}, not {idb} (--record)"
    ]
    r = suyuan("verify", str(p), "--genesis", "genesis.json", "--record", idb, "--json",
               cwd=tmp_path)  # fmt: skip
    assert r.returncode == 3
    doc = json.loads(r.stdout)
    assert doc["valid"] is False
    assert doc["record_id"] == ida
    r = suyuan("verify", str(p), "--genesis", "genesis.json", "--record", "xyz", cwd=tmp_path)
    assert r.returncode == 2
    assert "record id must be 64 hex characters, got 'xyz'" in r.stderr


def test_verify_json_and_checkpoint(chain, tmp_path):
    p = write(chain, tmp_path, chain.bundle(chain.envs[4], since_size=3))
    (tmp_path / "cp.json").write_text(checkpoint_to_json(chain.checkpoint(1)))
    r = suyuan(
        "verify",
        str(p),
        "--genesis",
        "genesis.json",
        "--checkpoint",
        "cp.json",
        "--json",
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["valid"] is True
    assert [s["status"] for s in doc["steps"]] == ["pass"] * 6


def test_verify_refuses_a_bundle_of_another_format(chain, tmp_path):
    b = chain.bundle(chain.envs[0])
    b.format = "suyuan-proof/2"
    p = write(chain, tmp_path, b)
    r = suyuan("verify", str(p), "--genesis", "genesis.json", cwd=tmp_path)
    assert r.returncode == 3
    assert "step 1 (chain) failed" in r.stderr


def test_evidence_verify(chain, tmp_path):
    (tmp_path / "genesis.json").write_text(chain.genesis.to_json())
    signer = chain.signers[1]
    a = sign_vote(signer, chain.ctx, VoteType.PRECOMMIT, 5, 0, b"\x01" * 32)
    b = sign_vote(signer, chain.ctx, VoteType.PRECOMMIT, 5, 0, b"\x02" * 32)
    ev = vote_evidence(a, b, chain.genesis.hash, chain.genesis.chain_id)
    doc = json_format.MessageToDict(
        services_pb2.ListEvidenceResponse(evidence=[ev]), preserving_proto_field_name=True
    )
    (tmp_path / "ev.json").write_text(json.dumps(doc))
    r = suyuan("evidence", "verify", "ev.json", "--genesis", "genesis.json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "vote equivocation by v1 at height 5" in r.stdout
    ev.duplicate_vote.b.signature = bytes(64)
    (tmp_path / "bad.json").write_text(json_format.MessageToJson(ev))
    r = suyuan("evidence", "verify", "bad.json", "--genesis", "genesis.json", cwd=tmp_path)
    assert r.returncode == 3
    assert "invalid signature" in r.stderr


def test_a_signature_too_long_for_a_log_entry_fails_in_one_line(chain, tmp_path):
    # QA: a 64 KiB signature crashed verify with struct.error (a 54-line traceback, exit 1)
    b = chain.bundle(chain.envs[0])
    b.envelope.signatures[0].sig = bytes(65536)
    p = write(chain, tmp_path, b)
    for extra in ([], ["--json"]):
        r = suyuan("verify", str(p), "--genesis", "genesis.json", *extra, cwd=tmp_path)
        assert r.returncode == 3, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1
        assert "Traceback" not in r.stderr
    assert json.loads(r.stdout)["valid"] is False


def test_documents_that_read_two_ways_are_refused(chain, tmp_path):
    # QA: the last of two equal keys won (a genesis showing validators ["farm"] first still
    # verified as the real chain), and log_index beside logIndex verified as the latter
    b = chain.bundle(chain.envs[0])
    p = write(chain, tmp_path, b)
    doc = json.loads(p.read_text())
    doc["log_index"], doc["logIndex"] = "0", "1"  # (one field under its two names)
    p.write_text(json.dumps(doc))
    r = suyuan("verify", str(p), "--genesis", "genesis.json", cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert "field 'log_index' is given twice (as logIndex and log_index)" in r.stderr
    good = write(chain, tmp_path, b)
    text = (tmp_path / "genesis.json").read_text()
    (tmp_path / "gdup.json").write_text('{"chain_id":"evil",' + text[1:])
    r = suyuan("verify", str(good), "--genesis", "gdup.json", cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert "key 'chain_id' is given twice" in r.stderr
    # a lone surrogate escape in the genesis: one line, not a UnicodeEncodeError traceback
    (tmp_path / "gsur.json").write_text(text.replace(chain.genesis.chain_id, "\\ud800", 1))
    r = suyuan("verify", str(good), "--genesis", "gsur.json", cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert "not valid Unicode" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_strict_json_refuses_repeats_at_any_depth():
    import pytest

    from node import strictjson
    from node.errors import InputError
    from proto import types_pb2

    with pytest.raises(InputError, match="key 'a' is given twice"):
        strictjson.loads('{"b": {"a": 1, "a": 2}}', "x")
    doc = {"checkpoint": {"header": "AA==", "certificate": {"block_hash": "", "blockHash": ""}}}
    with pytest.raises(InputError, match="field 'block_hash' is given twice"):
        strictjson.one_spelling(doc["checkpoint"], types_pb2.Checkpoint.DESCRIPTOR, "x")


@pytest.mark.parametrize(
    ("field", "value", "why"),
    [
        # QA: protobuf's reader took these for 1 and 6, and dropped the junk in base64
        ("log_index", "\u0661", "not an integer in digits"),
        ("record_height", "\uff16", "not an integer in digits"),
        ("log_index", "1.0", "not an integer in digits"),
        ("log_index", "1e0", "not an integer in digits"),
        ("log_index", 1.0, "not an integer in digits"),
        ("log_index", True, "not an integer in digits"),
        ("header", "Cg5zdXl1YW!!$$4tdG", "not base64"),
        ("genesis_hash", 7, "not base64"),
        # QA re-check: second spellings of the same value
        ("log_index", "01", "not an integer in digits"),
        ("header", "AAAA==", "not base64"),
        ("header", "AA", "not base64"),
        ("header", "AB==", "not base64"),
    ],
)
def test_bundle_numbers_and_bytes_are_read_one_way(chain, tmp_path, field, value, why):
    doc = json.loads(bundle_to_json(chain.bundle(chain.envs[0])))
    doc[field] = value
    (tmp_path / "genesis.json").write_text(chain.genesis.to_json())
    (tmp_path / "b.json").write_text(json.dumps(doc))
    r = suyuan("verify", "b.json", "--genesis", "genesis.json", cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert f"field {field!r}" in r.stderr
    assert why in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_a_checkpoint_of_the_empty_log_is_a_prefix_of_every_log(tmp_path):
    # QA: `checkpoint --height 1` of an empty first block was written, then verify said
    # "prove it with --since" and prove --since refused it as "the log is empty"
    from tests.proofs.chainbuilder import ChainBuilder

    b = ChainBuilder(tmp_path / "store")
    try:
        b.commit([])  # height 1: no records (an idle chain's first block)
        env = b.commission("urn:epc:id:sgtin:0614141.107346.77")
        b.commit([env])
        (tmp_path / "cp0.json").write_text(checkpoint_to_json(b.checkpoint(1)))
        p = write(b, tmp_path, b.bundle(env))
        r = suyuan(
            "verify", str(p), "--genesis", "genesis.json", "--checkpoint", "cp0.json",
            cwd=tmp_path,
        )  # fmt: skip
        assert r.returncode == 0, r.stderr
        assert "checkpoint at height 1 has an empty log" in r.stdout
    finally:
        b.close()


def test_verify_json_answers_on_stdout_for_a_bad_genesis_and_an_empty_checkpoint(chain, tmp_path):
    # QA: verify --json printed nothing for a bad genesis; a checkpoint `{}` was exit 3
    p = write(chain, tmp_path, chain.bundle(chain.envs[0]))
    (tmp_path / "bad-genesis.json").write_text("{")
    r = suyuan("verify", str(p), "--genesis", "bad-genesis.json", "--json", cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert json.loads(r.stdout)["valid"] is False
    (tmp_path / "cp.json").write_text("{}")
    r = suyuan("verify", str(p), "--genesis", "genesis.json", "--checkpoint", "cp.json",
               cwd=tmp_path)  # fmt: skip
    assert r.returncode == 2, r.stderr
    assert "no header or no certificate" in r.stderr


def test_audit_fails_when_the_node_sends_fewer_blocks_than_its_height(chain, tmp_path, monkeypatch):
    # QA: a node (here a stand-in) that reported height 563 and streamed 10 blocks passed
    # the audit, and --save-checkpoint would have recorded height 10 as the audited head
    from typer.testing import CliRunner

    import node.client
    from cli import main as cli_main

    blocks = chain.committed_blocks()
    g = chain.genesis

    class Node:
        def __init__(self, *a, **kw):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            pass

        def status(self):
            return services_pb2.StatusResponse(
                chain_id=g.chain_id, genesis_hash=g.hash, height=len(blocks)
            )

        def stream_blocks(self, start, end, timeout=None):
            return iter(blocks[:sent])

    monkeypatch.setattr(node.client, "LedgerClient", Node)
    (tmp_path / "genesis.json").write_text(g.to_json())
    args = ["audit", "--genesis", str(tmp_path / "genesis.json"), "--node", "127.0.0.1:9"]
    save = ["--save-checkpoint", str(tmp_path / "cp.json")]
    sent = len(blocks) - 1
    r = CliRunner().invoke(cli_main.app, [*args, *save])
    why = str(r.exception)  # (``cli.main.run`` prints it as one line, with its exit code)
    assert getattr(r.exception, "exit_code", None) == 3, r.output
    assert f"reported height {len(blocks)} but sent blocks only up to height {sent}" in why
    assert not (tmp_path / "cp.json").exists()
    sent = len(blocks)
    r = CliRunner().invoke(cli_main.app, [*args, *save])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "cp.json").exists()


def test_an_empty_document_is_not_a_bundle(chain, tmp_path):
    # QA: `verify` of [] or {} printed six FAIL lines, exit 3, as if a bundle had failed
    write(chain, tmp_path, chain.bundle(chain.envs[0]))  # (writes genesis.json too)
    for text in ("[]", "{}", '{"log_index": "0"}'):
        (tmp_path / "empty.json").write_text(text)
        r = suyuan("verify", "empty.json", "--genesis", "genesis.json", cwd=tmp_path)
        assert r.returncode == 2, (text, r.stdout, r.stderr)
        assert "bundle: not a proof bundle (a JSON object with a 'format'" in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1
