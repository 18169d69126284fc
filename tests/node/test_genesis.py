import hashlib
import json

import pytest

from node.errors import ConfigError
from node.genesis import ConsensusParams, Genesis, Member
from tests.fixtures import genesis, key


def test_hash_is_stable_under_reformatting(tmp_path):
    g = genesis()
    doc = g.to_dict()
    p = tmp_path / "g.json"
    p.write_text(json.dumps(doc, indent=7, sort_keys=False))
    assert Genesis.load(p).hash == g.hash
    doc["chain_id"] = "other"
    assert Genesis.from_dict(doc).hash != g.hash


def test_written_file_sha256_is_the_chain_identity(tmp_path):
    """Regression: the file used to be indented JSON, so `sha256sum genesis.json` differed
    from the identity `consortium init` printed (SHA-256 of the canonical form)."""
    farm = Member("farm", ("enterprise",), key("farm").public_key, display_name="养猪场")
    g = Genesis.build(
        "pork-cn",
        [farm, Member("v0", ("association",), key("v0").public_key)],
        ["v0"],
        ConsensusParams(max_record_bytes=1000),
        genesis_time="2026-03-01T00:00:00Z",
    )
    for gen in (g, genesis()):
        p = tmp_path / "g.json"
        p.write_text(gen.to_json(), encoding="utf-8")
        assert hashlib.sha256(p.read_bytes()).digest() == gen.hash
        assert p.read_bytes() == gen.canonical_bytes()
        assert Genesis.load(p).hash == gen.hash


def test_validator_keys_in_order():
    g = genesis()
    assert [v for v, _ in g.validator_keys()] == ["v0", "v1", "v2", "v3"]
    assert g.validator_keys()[0][1] == key("v0").public_key


def _doc():
    return genesis().to_dict()


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda d: d["members"].append(dict(d["members"][0])), "duplicate member"),
        (
            lambda d: d["members"][1].update(public_key=d["members"][0]["public_key"]),
            r"members 'v0' and 'v1' share one public key",  # (QA-W: which two)
        ),
        (lambda d: d["members"][0].update(roles=["king"]), "unknown role"),
        (lambda d: d.update(validators=[]), "at least one validator"),
        (lambda d: d.update(validators=["nobody"]), "not a member"),
        (lambda d: d.update(extra=1), "unknown field"),
        (lambda d: d["members"][0].update(public_key="zz"), "not hex"),
        (lambda d: d["consensus"].update(max_record_bytes=-1), "non-negative"),
        (lambda d: d.update(format="x"), "format"),
        (lambda d: d["members"][0].update(gs1_prefixes=[]), "must be a non-empty list"),
        (lambda d: d["members"][0].update(gs1_prefixes="6901234"), "must be a non-empty list"),
        (lambda d: d["members"][0].update(gs1_prefixes=["69O1234"]), "not a GS1 company prefix"),
        (lambda d: d["members"][0].update(gs1_prefixes=[6901234]), "not a GS1 company prefix"),
        (lambda d: d["members"][0].update(gs1_prefixes=["6901234"] * 2), "listed twice"),
        (lambda d: d["members"][0].update(gs1_prefixes=["000000"]), "is all zeros"),
        (lambda d: d["members"][0].update(gs1_prefixes=["0212345"]), "restricted circulation"),
        (lambda d: d["members"][0].update(gs1_prefixes=["000002"]), "GTIN-8 number space"),
        (lambda d: d["members"][0].update(gs1_prefixes=["9812345"]), "coupon or refund"),
        (lambda d: d["members"][0].update(gs1_prefixes=["0551234"]), "coupon or refund"),
    ],
)
def test_invalid_genesis_refused(mutate, match):
    d = _doc()
    mutate(d)
    with pytest.raises(ConfigError, match=match):
        Genesis.from_dict(d)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="no such genesis"):
        Genesis.load(tmp_path / "nope.json")


def test_gs1_prefixes_bind_codes_to_members_longest_prefix_first():
    g = genesis()
    assert not g.binds_prefixes
    assert "gs1_prefixes" not in json.dumps(g.to_dict())  # (an older genesis: same identity)
    doc = _doc()
    doc["members"][0]["gs1_prefixes"] = ["690123", "6951234"]
    doc["members"][1]["gs1_prefixes"] = ["6901234", "6951234"]  # (shared: a contract maker)
    with pytest.raises(ConfigError, match=r"6901234 \(.*\) lies within 690123 \(.*\): GS1"):
        Genesis.from_dict(doc)  # (a prefix inside another's takes its codes)
    doc["members"][0]["gs1_prefixes"] = ["690123", "6951234", "6901234"]  # (its own: nested)
    doc["members"][1]["gs1_prefixes"] = ["6911234", "6951234"]
    bound = Genesis.from_dict(doc)
    a, b = doc["members"][0]["id"], doc["members"][1]["id"]
    assert bound.binds_prefixes
    assert bound.hash != genesis().hash
    assert bound.prefix_owners("6901234123456") == ("6901234", a)  # the longest matching
    assert bound.prefix_owners("6901239123456") == ("690123", a)
    assert bound.prefix_owners("6911234123456") == ("6911234", b)
    assert bound.prefix_owners("6951234000017") == ("6951234", a, b)
    assert bound.prefix_owners("6921234000017") == ()
    assert bound.prefix_owners("") == ()
    assert Genesis.from_dict(bound.to_dict()).hash == bound.hash
