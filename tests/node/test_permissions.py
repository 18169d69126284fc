"""Role permissions live in the genesis: written at consortium init (and testnet up),
overridable, deterministic; a genesis without a table keeps the defaults (issue #6)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from node.errors import RulePermissionError
from node.genesis import Genesis
from node.permissions import DEFAULT_PERMISSIONS, allowed_roles, genesis_permissions
from node.records import make_record, sign_record, verify_envelope
from tests.cli.helpers import suyuan
from tests.fixtures import MEMBERS, key, object_event
from tests.fixtures import genesis as tableless_genesis


def _retail_sale(g: Genesis) -> None:
    rec = make_record(g, "retailer", object_event(["urn:x:1"], "retail_selling", "OBSERVE"))
    verify_envelope(sign_record(rec, key("retailer")), g)


def _init(tmp_path: Path, *extra: str) -> Genesis:
    out = tmp_path / f"genesis{len(extra)}.json"
    args = ["consortium", "init", "--chain-id", "perm-test", "--out", str(out)]
    for name, roles in MEMBERS.items():
        args += ["--member", f"{name}:{','.join(roles)}:{key(name).public_hex}"]
    args += ["--validator", "v0", *extra]
    r = suyuan(*args, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    return Genesis.load(out)


def test_init_writes_the_default_table_and_an_override_changes_what_is_accepted(
    tmp_path: Path,
) -> None:
    g = _init(tmp_path)
    assert g.permission_table() == dict(DEFAULT_PERMISSIONS)
    _retail_sale(g)
    (tmp_path / "perm.json").write_text(json.dumps({"retail_selling": ["regulator"]}))
    strict = _init(tmp_path, "--permissions", "perm.json")
    assert strict.permission_table()["retail_selling"] == ("regulator",)
    assert strict.permission_table()["shipping"] == DEFAULT_PERMISSIONS["shipping"]
    with pytest.raises(RulePermissionError, match="retail_selling"):
        _retail_sale(strict)


def test_bad_permissions_file_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "perm.json").write_text(json.dumps({"retail_selling": ["king"]}))
    v0 = f"v0:association:{key('v0').public_key.hex()}"
    args = ["consortium", "init", "--chain-id", "x", "--member", v0]
    r = suyuan(*args, "--validator", "v0", "--permissions", "perm.json", cwd=tmp_path)
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0
    assert "--permissions" in r.stderr


def test_table_is_deterministic_and_authoritative() -> None:
    members = list(tableless_genesis().members)
    a = Genesis.build("c", members, ["v0"], permissions=genesis_permissions())
    b = Genesis.build("c", members, ["v0"], permissions=genesis_permissions())
    assert a.hash == b.hash
    # a step missing from a genesis table uses the table's "*", not the software's defaults
    table = {"*": ("regulator",)}
    assert allowed_roles("shipping", table) == ("regulator",)
    # a genesis without a table (written before tables were) keeps the defaults
    assert allowed_roles("recalling", {}) == ("regulator",)
    _retail_sale(tableless_genesis())


@pytest.mark.parametrize(
    ("table", "why"),
    [
        ({"RECALLING": ["enterprise"]}, "is not how CBV spells 'recalling'"),
        ({"http://ref.gs1.org/cbv/BizStep-recalling": ["enterprise"]}, "is not how CBV spells"),
        (
            {"shipping": ["enterprise"], "urn:epcglobal:cbv:bizstep:shipping": ["regulator"]},
            "names 'shipping' a second time",
        ),
        ({"shipping": ["enterprise", "enterprise"]}, "lists a role twice"),
    ],
)
def test_a_permissions_file_that_could_not_apply_is_refused(tmp_path: Path, table, why) -> None:
    # these rows were written into the genesis: never applying, or silently overridden
    (tmp_path / "perm.json").write_text(json.dumps(table))
    v0 = f"v0:association:{key('v0').public_key.hex()}"
    args = ["consortium", "init", "--chain-id", "x", "--member", v0]
    r = suyuan(*args, "--validator", "v0", "--permissions", "perm.json", cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert why in r.stderr
    assert not (tmp_path / "genesis.json").exists()
