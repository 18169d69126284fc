"""The offline CLI contract: keys, consortium init, record sign/cosign/verify."""

import json
import os

import pytest

from tests.cli.helpers import suyuan
from tests.fixtures import object_event


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    for name in ("farm", "slaughterhouse", "v0"):
        r = suyuan("keys", "new", name, "--unencrypted", cwd=d)
        assert r.returncode == 0, r.stderr
        assert "UNENCRYPTED" in r.stderr
    r = suyuan(
        "consortium",
        "init",
        "--chain-id",
        "cli-test",
        "--member",
        "farm:enterprise:farm.key",
        "--member",
        "slaughterhouse:enterprise:slaughterhouse.key",
        "--member",
        "v0:association,regulator:v0.key",
        "--validator",
        "v0",
        "--out",
        "genesis.json",
        "--json",
        cwd=d,
    )
    assert r.returncode == 0, r.stderr
    assert len(json.loads(r.stdout)["genesis_hash"]) == 64
    (d / "ev.json").write_text(json.dumps(object_event(["urn:epc:id:sgtin:0614141.107346.1"])))
    return d


def test_help_lists_groups(net):
    r = suyuan("--help", cwd=net)
    assert r.returncode == 0
    for group in ("keys", "consortium", "record"):
        assert group in r.stdout


def test_keys_show(net):
    r = suyuan("keys", "show", "farm.key", "--json", cwd=net)
    assert r.returncode == 0
    assert json.loads(r.stdout)["name"] == "farm"


def test_encrypted_key_via_env(net):
    env = {"SUYUAN_PASSPHRASE": "s3cret"}
    r = suyuan("keys", "new", "enc", "--out", "enc.key", cwd=net, env=env)
    assert r.returncode == 0, r.stderr
    assert os.stat(net / "enc.key").st_mode & 0o777 == 0o600
    assert "seed" not in (net / "enc.key").read_text()


def test_sign_and_verify(net):
    r = suyuan(
        "record",
        "sign",
        "ev.json",
        "--key",
        "farm.key",
        "--genesis",
        "genesis.json",
        "--category",
        "meat",
        "--out",
        "env.json",
        cwd=net,
    )
    assert r.returncode == 0, r.stderr
    r = suyuan("record", "verify", "env.json", "--genesis", "genesis.json", "--json", cwd=net)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["valid"] is True
    assert out["author"] == "farm"


def test_tampered_envelope_exits_nonzero_with_one_line(net):
    suyuan(
        "record",
        "sign",
        "ev.json",
        "--key",
        "farm.key",
        "--genesis",
        "genesis.json",
        "--out",
        "t.json",
        cwd=net,
    )
    doc = json.loads((net / "t.json").read_text())
    sig = bytearray(__import__("base64").b64decode(doc["signatures"][0]["sig"]))
    sig[5] ^= 1
    doc["signatures"][0]["sig"] = __import__("base64").b64encode(bytes(sig)).decode()
    (net / "t.json").write_text(json.dumps(doc))
    r = suyuan("record", "verify", "t.json", "--genesis", "genesis.json", cwd=net)
    assert r.returncode != 0
    assert r.stderr.strip().count("\n") == 0
    assert "signature by 'farm': invalid" in r.stderr
    assert "Traceback" not in r.stderr


def test_handoff_cosign_flow(net):
    draft = {
        "event": object_event(["urn:x:9"], "shipping", "OBSERVE"),
        "handoff_to": "slaughterhouse",
        "category": "meat",
    }
    (net / "h.json").write_text(json.dumps(draft))
    r = suyuan(
        "record",
        "sign",
        "h.json",
        "--key",
        "farm.key",
        "--genesis",
        "genesis.json",
        "--out",
        "offer.json",
        cwd=net,
    )
    assert r.returncode == 0, r.stderr
    r = suyuan("record", "verify", "offer.json", "--genesis", "genesis.json", cwd=net)
    assert r.returncode != 0
    assert "missing signature of the receiver" in r.stderr
    r = suyuan("record", "cosign", "offer.json", "--key", "v0.key", "--out", "x.json", cwd=net)
    assert r.returncode != 0
    assert not (net / "x.json").exists()
    r = suyuan(
        "record",
        "cosign",
        "offer.json",
        "--key",
        "slaughterhouse.key",
        "--out",
        "done.json",
        cwd=net,
    )
    assert r.returncode == 0, r.stderr
    r = suyuan("record", "verify", "done.json", "--genesis", "genesis.json", cwd=net)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["record", "verify", "nope.json", "--genesis", "genesis.json"], "no such envelope"),
        (["record", "verify", "ev.json", "--genesis", "nope.json"], "no such genesis"),
        (
            [
                "record",
                "sign",
                "ev.json",
                "--key",
                "nope.key",
                "--genesis",
                "genesis.json",
                "--out",
                "o.json",
            ],
            "no such key file",
        ),
        (
            [
                "consortium",
                "init",
                "--chain-id",
                "x",
                "--member",
                "a:king:farm.key",
                "--validator",
                "a",
                "--out",
                "g2.json",
            ],
            "unknown role",
        ),
        (
            [
                "consortium",
                "init",
                "--chain-id",
                "x",
                "--member",
                "farm:enterprise:farm.key",
                "--validator",
                "farm",
                "--out",
                "genesis.json",
            ],
            "already exists",
        ),
    ],
)
def test_bad_input_one_line(net, args, needle):
    r = suyuan(*args, cwd=net)
    assert r.returncode != 0
    assert needle in r.stderr
    assert "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["verify", "genesis.json", "--genesis", "genesis.json"],
            "error: genesis.json: bundle: not a ProofBundle JSON document (Message type "
            '"suyuan.v1.ProofBundle" has no field named "chain_id" at "ProofBundle".)',
        ),
        (
            ["verify", "nope.json", "--genesis", "genesis.json"],
            "error: nope.json: no such bundle file",
        ),
        (
            ["evidence", "verify", "genesis.json", "--genesis", "genesis.json"],
            "error: genesis.json: evidence: not an Evidence JSON document (Message type "
            '"suyuan.v1.Evidence" has no field named "format" at "Evidence".)',
        ),
        (
            ["evidence", "verify", "nope.json", "--genesis", "genesis.json"],
            "error: nope.json: no such evidence file",
        ),
        (
            ["verify", "nope.json", "--genesis", "genesis.json", "--checkpoint", "genesis.json"],
            "error: nope.json: no such bundle file",
        ),
    ],
)
def test_file_errors_are_one_line_naming_the_path_once(net, args, expected):
    r = suyuan(*args, cwd=net)
    assert r.returncode == 2
    assert r.stderr.strip() == expected
