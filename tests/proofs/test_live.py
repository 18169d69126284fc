"""Against a real 4-node testnet (separate processes): every honest bundle from every node
verifies; checkpoints carry a note signed by >= 2f+1 validators; audit passes and is
consistent with its own saved checkpoint; evidence lists."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest
from nacl.signing import VerifyKey

from node.verify import parse_bundle_json, verify_bundle
from proto import types_pb2
from tests.cli.helpers import suyuan
from tests.testnet.conftest import testnet4  # noqa: F401 (the fixture)

pytestmark = pytest.mark.slow


def run(tn, *args, ok=True):
    r = suyuan(*args, cwd=tn.dir, timeout=120)
    if ok:
        assert r.returncode == 0, f"{args}: {r.stderr}"
    return r


def test_prove_verify_checkpoint_audit_evidence(testnet4):  # noqa: F811
    tn = testnet4
    g = str(tn.dir / "genesis.json")
    ids = tn.submit_records(8, nodes=(0, 1, 2, 3), wait=True)
    tn.wait_same_head()
    # every honest bundle, from every node, verifies (library); two also through the CLI
    for i, rid in enumerate(ids):
        for n in range(4):
            with tn.client(n) as c:
                res = verify_bundle(c.prove(rid), tn.genesis)
            assert res, res.describe()
    for i, rid in enumerate(ids[:2]):
        out = tn.dir / f"b{i}-0.json"
        run(tn, "prove", rid.hex(), "--node", tn.addresses[i], "--out", str(out))
        assert verify_bundle(parse_bundle_json(out.read_text()), tn.genesis)
        run(tn, "verify", str(out), "--genesis", g)
    # a checkpoint with a C2SP note from the validators
    r = run(
        tn, "checkpoint", "--node", tn.addresses[0], "--genesis", g, "--out", "cp.json", "--json"
    )
    info = json.loads(r.stdout)
    assert len(info["note_signers"]) >= 3
    note = (tn.dir / "cp.note").read_text()
    cut = note.index("\n\n")
    keys = dict(tn.genesis.validator_keys())
    for line in note[cut + 2 :].rstrip("\n").split("\n"):
        _, name, blob = line.split(" ")
        raw = base64.b64decode(blob)
        pub = keys[name.rsplit("/", 1)[1]]
        assert raw[:4] == hashlib.sha256(name.encode() + b"\n\x01" + pub).digest()[:4]
        VerifyKey(pub).verify(note[: cut + 1].encode(), raw[4:])
    # later records, proven consistent with the saved checkpoint
    later = tn.submit_records(3, nodes=(2,), wait=True)
    tn.wait_same_head()
    out = tn.dir / "later.json"
    run(
        tn,
        "prove",
        later[-1].hex(),
        "--node",
        tn.addresses[1],
        "--since",
        "cp.json",
        "--out",
        str(out),
    )
    run(tn, "verify", str(out), "--genesis", g, "--checkpoint", "cp.json")
    old = tn.dir / "old.json"
    run(
        tn,
        "prove",
        ids[0].hex(),
        "--node",
        tn.addresses[3],
        "--since",
        "cp.json",
        "--out",
        str(old),
    )
    run(tn, "verify", str(old), "--genesis", g, "--checkpoint", "cp.json")
    # without the checkpoint, the proof's old root is the node's word: step 6 is not a pass
    r = run(tn, "verify", str(out), "--genesis", g, "--json")
    step6 = json.loads(r.stdout)["steps"][5]
    assert step6["status"] == "skipped", step6
    assert "--checkpoint" in step6["message"], step6
    # prove --since checks the checkpoint: with the genesis, its certificate and the bundle;
    # without, at least that the node's log has the checkpoint's root (nothing is written)
    cp_doc = json.loads((tn.dir / "cp.json").read_text())
    forged = json.loads(json.dumps(cp_doc))
    sig = bytearray(base64.b64decode(forged["certificate"]["signatures"][0]["signature"]))
    sig[0] ^= 1
    forged["certificate"]["signatures"][0]["signature"] = base64.b64encode(sig).decode()
    (tn.dir / "forged.json").write_text(json.dumps(forged))
    hdr = types_pb2.BlockHeader.FromString(base64.b64decode(cp_doc["header"]))
    hdr.log_root = bytes(32)
    other = dict(cp_doc, header=base64.b64encode(hdr.SerializeToString()).decode())
    (tn.dir / "other.json").write_text(json.dumps(other))
    rid = later[-1].hex()
    for cp_file, extra, why in (
        ("forged.json", ("--genesis", g), "invalid signature"),
        ("other.json", ("--genesis", g), "other.json: checkpoint"),
        ("other.json", (), "another root"),
    ):
        bad_out = tn.dir / "refused.json"
        # without --genesis, from a folder with no genesis.json (./genesis.json would be read)
        where = tn.dir if extra else tn.dir / "elsewhere"
        where.mkdir(exist_ok=True)
        r = suyuan(
            "prove",
            rid,
            "--node",
            tn.addresses[1],
            "--since",
            str(tn.dir / cp_file),
            *extra,
            "--out",
            str(bad_out),
            cwd=where,
            timeout=120,
        )
        assert r.returncode == 3, (cp_file, extra, r.stderr)
        assert why in r.stderr, r.stderr
        lines = r.stderr.strip().splitlines()
        if not extra:  # QA: without a genesis the certificate went unchecked without a word
            assert lines[0].startswith("warning: "), lines
            assert "other.json's certificate is not checked" in lines[0], lines
            lines = lines[1:]
        assert len(lines) == 1, r.stderr
        assert not bad_out.exists()
    # audit: healthy, then consistent with its own saved checkpoint
    r = run(
        tn,
        "audit",
        "--genesis",
        g,
        "--node",
        tn.addresses[0],
        "--json",
        "--save-checkpoint",
        "audit.json",
    )
    rep = json.loads(r.stdout)
    assert rep["ok"] is True
    assert rep["records"] == 11
    r = run(tn, "audit", "--genesis", g, "--node", tn.addresses[2], "--checkpoint", "audit.json")
    assert "audit passed" in r.stdout
    # evidence: an honest testnet has none, and the listing verifies as a document
    r = run(tn, "evidence", "list", "--node", tn.addresses[0], "--json", "--out", "ev.json")
    assert "evidence" in json.loads(r.stdout) or json.loads(r.stdout) == {}
    # a tampered bundle fails with one line
    doc = json.loads((tn.dir / "b0-0.json").read_text())
    doc["log_index"] = str(int(doc.get("log_index", "0")) + 1)
    (tn.dir / "bad.json").write_text(json.dumps(doc))
    r = run(tn, "verify", "bad.json", "--genesis", g, ok=False)
    assert r.returncode == 3
    assert "step 3" in r.stderr
