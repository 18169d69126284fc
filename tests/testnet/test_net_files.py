"""Testnet files without processes: keys, genesis, configs, manifest, folder checks."""

from __future__ import annotations

import json
import stat

import pytest

from node.config import NodeConfig
from node.errors import ConfigError, InputError
from node.genesis import Genesis
from node.keys import load_key_file
from node.permissions import DEFAULT_PERMISSIONS
from testnet import manifest as mf
from testnet.net import _check_same_bindings, _check_same_shape, busy_addresses


def test_create_writes_keys_genesis_configs_and_manifest(tmp_path):
    d = tmp_path / "net"
    man = mf.create(d, 4, base_port=31000, chain_id="t-chain")
    g = Genesis.load(d / "genesis.json")
    assert g.chain_id == "t-chain"
    assert g.permission_table() == dict(DEFAULT_PERMISSIONS)  # the table is in the genesis
    assert g.validators == ("validator0", "validator1", "validator2", "validator3")
    for v in g.validators:
        m = g.member(v)
        assert m is not None
        assert m.roles == ("association",)
    for name, roles in mf.DEMO_MEMBERS.items():
        m = g.member(name)
        assert m is not None
        assert m.roles == roles
        key = load_key_file(d / "keys" / f"{name}.key")
        assert key.public_key == m.public_key
        assert stat.S_IMODE((d / "keys" / f"{name}.key").stat().st_mode) == 0o600
    assert g.consensus == mf.LOCAL_CONSENSUS

    for n in man.nodes:
        cfg = NodeConfig.load(n.config)
        assert cfg.member == f"validator{n.index}"
        assert cfg.listen == f"127.0.0.1:{31000 + n.index}" == n.address
        assert set(cfg.peers) == {m.address for m in man.nodes} - {n.address}
        assert cfg.data_dir.resolve() == d.resolve() / f"node{n.index}" == n.data_dir
        assert cfg.genesis.resolve() == d.resolve() / "genesis.json"
        # written relative to the config's folder: the testnet folder can move
        assert '"../genesis.json"' in n.config.read_text()
        assert load_key_file(cfg.key_file).name == cfg.member
        assert n.data_dir.is_dir()
        assert n.log == n.data_dir / "node.log"
        assert n.pid is None


def test_manifest_round_trips_and_is_written_atomically(tmp_path):
    man = mf.create(tmp_path / "net", 2, base_port=31100)
    again = mf.Manifest.load(tmp_path / "net")
    assert again == man
    man2 = again.with_pid(1, 4242)
    man2.save()
    doc = json.loads((tmp_path / "net" / "testnet.json").read_text())
    assert doc["format"] == "suyuan-testnet/1"
    assert [n["pid"] for n in doc["nodes"]] == [None, 4242]
    assert [n["address"] for n in doc["nodes"]] == ["127.0.0.1:31100", "127.0.0.1:31101"]
    assert not [p for p in (tmp_path / "net").iterdir() if p.name.startswith(".")]


def test_one_node_testnet_has_no_peers(tmp_path):
    man = mf.create(tmp_path / "one", 1, base_port=31200)
    assert NodeConfig.load(man.nodes[0].config).peers == ()


def test_refuses_a_folder_with_other_files(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    with pytest.raises(InputError, match="holds no testnet"):
        mf.create(tmp_path / "pkg", 4)
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="not a folder"):
        mf.check_dir_usable(tmp_path / "file")


def test_refuses_the_repository_testnet_package():
    import testnet

    pkg = __import__("pathlib").Path(testnet.__file__).parent
    with pytest.raises(InputError, match="holds no testnet"):
        mf.check_dir_usable(pkg)


def test_empty_folder_is_fine_and_existing_testnet_is_not_recreated(tmp_path):
    (tmp_path / "empty").mkdir()
    mf.create(tmp_path / "empty", 1, base_port=31300)
    with pytest.raises(InputError, match="already holds a testnet"):
        mf.create(tmp_path / "empty", 1, base_port=31300)


@pytest.mark.parametrize(("nodes", "port"), [(0, 31000), (65, 31000), (4, 80), (4, 65534)])
def test_out_of_range_arguments(tmp_path, nodes, port):
    with pytest.raises(InputError):
        mf.plan(tmp_path, nodes, port, "c")


def test_node_index_out_of_range(tmp_path):
    man = mf.create(tmp_path / "n", 2, base_port=31400)
    with pytest.raises(InputError, match=r"nodes 0\.\.1"):
        man.node(2)


def test_damaged_manifest(tmp_path):
    (tmp_path / "testnet.json").write_text('{"format": "other"}')
    with pytest.raises(ConfigError, match="not a testnet manifest"):
        mf.Manifest.load(tmp_path)
    (tmp_path / "testnet.json").write_text("{nope")
    with pytest.raises(ConfigError, match="unreadable"):
        mf.Manifest.load(tmp_path)
    with pytest.raises(InputError, match="no testnet"):
        mf.Manifest.load(tmp_path / "missing")


def test_reuse_must_keep_the_shape(tmp_path):
    man = mf.create(tmp_path / "n", 2, base_port=31500)
    _check_same_shape(man, None, None, None)
    _check_same_shape(man, 2, 31500, man.chain_id)
    with pytest.raises(InputError, match="2-node testnet"):
        _check_same_shape(man, 3, None, None)
    with pytest.raises(InputError, match="base port 31500"):
        _check_same_shape(man, None, 31600, None)
    with pytest.raises(InputError, match="holds chain 'suyuan-testnet'; omit --chain-id"):
        _check_same_shape(man, None, None, "pork-cn")  # (QA: ignored without a word)


def test_a_new_testnet_binds_the_gs1_prefixes_asked_for(tmp_path):
    man = mf.create(
        tmp_path / "n", 2, base_port=31500, gs1_prefixes=["processor=6903456", "farm=6901234"]
    )
    g = Genesis.load(man.genesis)
    processor = g.member("processor")
    assert processor is not None
    assert processor.gs1_prefixes == ("6903456",)
    assert g.prefix_owners("690345644444") == ("6903456", "processor")
    assert g.prefix_owners("690456700000") == ()
    assert mf.bindings(g) == {"processor=6903456", "farm=6901234"}
    # a restart takes the genesis's own bindings, or none; others are refused, not ignored
    _check_same_bindings(man, None)
    _check_same_bindings(man, ["farm=6901234", "processor=6903456"])
    with pytest.raises(InputError, match="genesis binds farm=6901234, processor=6903456; omit"):
        _check_same_bindings(man, ["farm=6901234"])
    plain = mf.create(tmp_path / "p", 1, base_port=31600)
    with pytest.raises(InputError, match="binds no GS1 company prefixes; omit --gs1-prefix"):
        _check_same_bindings(plain, ["farm=6901234"])


@pytest.mark.parametrize(
    ("spec", "why"),
    [
        ("farm", "expected MEMBER=PREFIX"),
        ("nobody=6901234", r"'nobody' is not a member \(members: validator0, farm,"),
        ("farm=69", "is not a GS1 company prefix"),
        ("farm=0000", "is all zeros"),
        ("farm=2123456", "restricted circulation"),
    ],
)
def test_a_bad_binding_writes_no_testnet(tmp_path, spec, why):
    d = tmp_path / "n"
    with pytest.raises(ConfigError, match=why):
        mf.create(d, 1, base_port=31500, gs1_prefixes=[spec])
    assert not d.exists() or not any(d.iterdir())


def test_nested_prefixes_of_two_members_write_no_testnet(tmp_path):
    d = tmp_path / "n"
    with pytest.raises(ConfigError, match="69012345 \\(retailer\\) lies within 6901234"):
        mf.create(d, 1, base_port=31500, gs1_prefixes=["farm=6901234", "retailer=69012345"])
    assert not d.exists() or not any(d.iterdir())


def test_owned_layout_covers_everything_created(tmp_path):
    man = mf.create(tmp_path / "n", 3, base_port=31600)
    owned = {f / n for f, names in man.owned_layout() for n in names}
    owned |= {f for f, _ in man.owned_layout()}
    assert set((tmp_path / "n").resolve().iterdir()) <= owned


def test_busy_addresses_detects_a_listener():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        addr = f"127.0.0.1:{s.getsockname()[1]}"
        assert busy_addresses([addr]) == [addr]
    assert busy_addresses([addr]) == []


def test_commands_that_change_a_testnet_exclude_each_other(tmp_path):
    from testnet.net import locked

    mf.create(tmp_path / "n", 1, base_port=31700)
    with (
        locked(tmp_path / "n"),
        pytest.raises(InputError, match="busy"),
        locked(tmp_path / "n", wait=0.2),
    ):
        pass
    with locked(tmp_path / "n", wait=0.2):
        pass  # released again
    mf.check_dir_usable(tmp_path / "n")


def test_a_lock_file_alone_does_not_make_a_folder_foreign(tmp_path):
    (tmp_path / "n").mkdir()
    (tmp_path / "n" / mf.LOCK_NAME).write_text("")
    mf.create(tmp_path / "n", 1, base_port=31800)


def test_up_on_a_taken_port_writes_no_testnet(tmp_path, monkeypatch):
    # QA: the refused `up` left keys, genesis and a manifest with those ports behind, so a
    # retry with another --base-port was refused as "another shape"
    import socket

    from testnet import net

    monkeypatch.setattr(net, "PORT_RELEASE_WAIT_S", 0.1)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        d = tmp_path / "net"
        with pytest.raises(InputError, match=f"port\\(s\\) in use on 127.0.0.1: 127.0.0.1:{port}"):
            net.up(d, 1, port)
    assert not mf.is_testnet_dir(d)
    assert not (d / "genesis.json").exists()


@pytest.mark.parametrize("pid", [99_999_999_999, 0, -1, True, "12"])
def test_a_manifest_pid_out_of_range_is_a_config_error(tmp_path, pid):
    # QA: a pid of 99999999999 was an OverflowError traceback from every testnet command
    man = mf.create(tmp_path / "n", 1, base_port=31700)
    doc = json.loads(man.path.read_text())
    doc["nodes"][0]["pid"] = pid
    man.path.write_text(json.dumps(doc))
    with pytest.raises(ConfigError, match=r"nodes\[0\]: missing or invalid field pid"):
        mf.Manifest.load(tmp_path / "n")


def test_a_creation_killed_before_its_manifest_is_redone(tmp_path):
    # QA: `testnet up` killed while writing keys left a folder that up, up --fresh and down
    # all refused ("not empty and holds no testnet"); only rm -rf helped
    from node.keys import KeyPair, write_key_file
    from testnet import manifest as mf

    d = tmp_path / "net"
    (d / "keys").mkdir(parents=True)
    (d / mf.CREATING_NAME).touch()
    write_key_file(d / "keys" / "validator0.key", KeyPair.generate("validator0"), None)
    man = mf.create(d, 4, 26650)
    assert mf.is_testnet_dir(d)
    assert not (d / mf.CREATING_NAME).exists()
    assert len(man.nodes) == 4
    # a folder of other things is still refused
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="holds no testnet"):
        mf.create(other, 4, 26650)


def test_a_full_disk_is_a_storage_error_with_the_free_space(tmp_path, monkeypatch):
    # QA: "cannot write the output: No space left on device", exit 2 (the README: exit 4)
    import errno

    from node.errors import StorageError
    from testnet import net

    def full(*a, **kw):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(net, "_up", full)
    with pytest.raises(StorageError, match=r"cannot write in .*: No space left on device \(") as e:
        net.up(tmp_path / "n", 1, 31700)
    assert e.value.exit_code == 4
