"""--node resolution: explicit address, $SUYUAN_TESTNET, ./testnet, and the clear error."""

from __future__ import annotations

import pytest

from cli.nodeaddr import TESTNET_ENV, NodeTarget, resolve_node
from node.errors import InputError
from testnet import manifest as mf

ERROR = "no --node given (nor $SUYUAN_NODE) and no testnet found in ./testnet or $SUYUAN_TESTNET"


def test_explicit_address_wins(tmp_path):
    t = resolve_node("127.0.0.1:9999", cwd=tmp_path, env={})
    assert t.address == "127.0.0.1:9999"
    assert t.testnet_dir is None
    assert t.genesis is None


@pytest.mark.parametrize(
    "bad",
    ["localhost", ":80", "h:0", "h:70000", "h:port", "http://127.0.0.1:26650", "u@h:1", "a b:1"],
)
def test_explicit_address_must_be_host_port(tmp_path, bad):
    with pytest.raises(InputError, match="host:port"):
        resolve_node(bad, cwd=tmp_path, env={})


def test_no_testnet_anywhere_is_a_clear_error(tmp_path):
    with pytest.raises(InputError) as ei:
        resolve_node(None, cwd=tmp_path, env={})
    assert str(ei.value) == ERROR


def test_dot_testnet_without_manifest_is_not_a_testnet(tmp_path):
    (tmp_path / "testnet").mkdir()
    (tmp_path / "testnet" / "__init__.py").write_text("")
    with pytest.raises(InputError, match="no testnet found"):
        resolve_node(None, cwd=tmp_path, env={})


def test_dot_testnet_with_manifest(tmp_path):
    mf.create(tmp_path / "testnet", 4, base_port=32000)
    t = resolve_node(None, cwd=tmp_path, env={})
    assert t.address == "127.0.0.1:32000"
    assert t.testnet_dir == (tmp_path / "testnet").resolve()
    assert t.genesis == (tmp_path / "testnet").resolve() / "genesis.json"


def test_env_testnet_comes_first(tmp_path):
    mf.create(tmp_path / "testnet", 1, base_port=32000)
    mf.create(tmp_path / "elsewhere", 1, base_port=33000)
    t = resolve_node(None, cwd=tmp_path, env={TESTNET_ENV: str(tmp_path / "elsewhere")})
    assert t.address == "127.0.0.1:33000"


def test_env_relative_to_cwd_and_fallback_when_not_a_testnet(tmp_path):
    mf.create(tmp_path / "rel", 1, base_port=33100)
    assert resolve_node(None, cwd=tmp_path, env={TESTNET_ENV: "rel"}).address.endswith(":33100")
    mf.create(tmp_path / "testnet", 1, base_port=33200)
    (tmp_path / "plain").mkdir()
    t = resolve_node(None, cwd=tmp_path, env={TESTNET_ENV: str(tmp_path / "plain")})
    assert t.address.endswith(":33200")


def test_explicit_address_of_a_testnet_node_knows_its_genesis(tmp_path):
    mf.create(tmp_path / "testnet", 3, base_port=34000)
    t = resolve_node("127.0.0.1:34002", cwd=tmp_path, env={})
    assert t.testnet_dir == (tmp_path / "testnet").resolve()
    assert resolve_node("127.0.0.1:34009", cwd=tmp_path, env={}).testnet_dir is None


def test_explicit_address_ignores_a_damaged_testnet(tmp_path):
    (tmp_path / "testnet").mkdir()
    (tmp_path / "testnet" / "testnet.json").write_text("{bad")
    assert resolve_node("127.0.0.1:1234", cwd=tmp_path, env={}).address == "127.0.0.1:1234"


def test_suyuan_node_names_the_node_outside_a_testnet(tmp_path):
    # QA: in a real consortium every client command needed --node
    mf.create(tmp_path / "testnet", 1, base_port=33300)
    env = {"SUYUAN_NODE": "10.0.0.7:26650"}
    assert resolve_node(None, cwd=tmp_path, env=env) == NodeTarget("10.0.0.7:26650")
    assert resolve_node("127.0.0.1:1", cwd=tmp_path, env=env).address == "127.0.0.1:1"
    with pytest.raises(InputError, match=r"\$SUYUAN_NODE must be host:port .*got 'http://x:1'"):
        resolve_node(None, cwd=tmp_path, env={"SUYUAN_NODE": "http://x:1"})
