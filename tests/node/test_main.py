"""``suyuan node start`` refuses a bad config before serving, naming the field (issue #5)."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import socket
from pathlib import Path

import lmdb
import pytest

from node.config import NodeConfig
from node.errors import ConfigError, KeyFileError, LedgerError, StorageError
from node.keys import KeyPair, write_key_file
from node.main import serve
from node.node import Node
from tests.fixtures import genesis, key


def _setup(tmp_path: Path, **over: object) -> NodeConfig:
    g = tmp_path / "genesis.json"
    g.write_text(genesis().to_json())
    if not (tmp_path / "v0.key").exists():
        write_key_file(tmp_path / "v0.key", key("v0"), None)
    doc: dict[str, object] = {
        "member": "v0",
        "key_file": "v0.key",
        "genesis": "genesis.json",
        "data_dir": "data",
        "listen": "127.0.0.1:1",
        **over,
    }
    return NodeConfig.from_dict(doc, base=tmp_path)


def _refusal(cfg: NodeConfig) -> LedgerError:
    with pytest.raises(LedgerError) as info:
        asyncio.run(serve(cfg))
    return info.value


def test_key_with_a_members_name_but_another_public_key(tmp_path: Path) -> None:
    cfg = _setup(tmp_path)
    impostor = KeyPair.from_seed("v0", hashlib.sha256(b"not v0").digest())
    write_key_file(tmp_path / "impostor.key", impostor, None)
    err = _refusal(_setup(tmp_path, key_file="impostor.key"))
    assert isinstance(err, ConfigError)
    assert str(err).startswith("key_file: ")
    assert "public key" in str(err)
    assert not cfg.data_dir.exists()  # refused before anything was created


def test_uncreatable_data_dir(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    err = _refusal(_setup(tmp_path, data_dir="file/data"))
    assert isinstance(err, ConfigError)
    assert str(err).startswith("data_dir: cannot create ")
    # QA: data_dir naming a file said "cannot create ... (File exists)"
    err = _refusal(_setup(tmp_path, data_dir="file"))
    assert isinstance(err, ConfigError)
    assert str(err) == f"data_dir: {tmp_path / 'file'} is a file, not a folder"


def test_missing_genesis_and_key_name_their_field(tmp_path: Path) -> None:
    err = _refusal(_setup(tmp_path, genesis="nope.json"))
    assert isinstance(err, ConfigError)
    assert str(err).startswith("genesis: ")
    err = _refusal(_setup(tmp_path, key_file="nope.key"))
    assert isinstance(err, KeyFileError)
    assert str(err).startswith("key_file: ")


def test_non_member_key_and_member_mismatch(tmp_path: Path) -> None:
    write_key_file(tmp_path / "stranger.key", key("stranger"), None)
    err = _refusal(_setup(tmp_path, member="stranger", key_file="stranger.key"))
    assert str(err).startswith("member: 'stranger' is not a member")
    err = _refusal(_setup(tmp_path, member="v1"))
    assert str(err).startswith("member: ")


def test_record_limit_above_genesis(tmp_path: Path) -> None:
    err = _refusal(_setup(tmp_path, limits={"max_record_bytes": 64 * 1024 + 1}))
    assert isinstance(err, ConfigError)
    assert str(err).startswith("limits.max_record_bytes: 65537 is above the genesis limit 65536")


def test_a_crashed_consensus_task_stops_the_node_with_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def crash(self: Node) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(Node, "_consensus_loop", crash)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = _setup(tmp_path, listen=f"127.0.0.1:{port}")
    with caplog.at_level(logging.ERROR, logger="suyuan.main"):
        err = _refusal(cfg)
    assert type(err) is LedgerError
    assert err.exit_code != 0
    assert "consensus task failed (RuntimeError('boom'))" in str(err)
    assert "consensus stopped: RuntimeError('boom')" in caplog.text
    assert not (cfg.data_dir / "node.pid").exists()  # stopped cleanly


def test_a_store_write_failure_stops_the_node_with_exit_4_and_the_free_space(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # a full disk ended as exit 1 ("consensus task failed"), and LMDB calls it an I/O error
    class FullDisk:  # the store's LMDB environment, its commits failing as on a full disk
        def __init__(self, env: object) -> None:
            self.env = env

        def __getattr__(self, name: str) -> object:
            return getattr(self.env, name)

        def begin(self, **kw: object) -> object:
            txn = self.env.begin(**kw)  # type: ignore[attr-defined]

            class Txn:
                def __getattr__(self, name: str) -> object:
                    return getattr(txn, name)

                def commit(self) -> None:
                    txn.abort()
                    raise lmdb.DiskError("mdb_txn_commit: Input/output error")

            return Txn()

    async def full(self: Node) -> None:
        self.store._env = FullDisk(self.store._env)  # type: ignore[assignment]
        self.store.put_sign_state(b"state")

    monkeypatch.setattr(Node, "_consensus_loop", full)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    err = _refusal(_setup(tmp_path, listen=f"127.0.0.1:{port}"))
    assert isinstance(err, StorageError)
    assert err.exit_code == 4
    assert str(err).startswith("node stopped: cannot write the store")
    assert "Input/output error" in str(err)
    assert "MiB free on its filesystem" in str(err)
    # told in one line: no traceback in the log (QA: 40 lines, printed twice, before it)
    stopped = [r for r in caplog.records if "consensus stopped" in r.getMessage()]
    assert stopped
    assert all(r.exc_info is None for r in stopped)


def test_a_data_folder_file_that_cannot_be_written_is_a_storage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # it read "cannot write the output: No space left on device" (exit 2)
    import errno

    import node.main

    async def no_space(*args: object, **kw: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(node.main, "_serve", no_space)
    err = _refusal(_setup(tmp_path))
    assert isinstance(err, StorageError)
    assert str(err).startswith(f"cannot write in data_dir {tmp_path / 'data'}: No space left")


def test_tune_gc_collects_young_objects_rarely_and_freezes_startup_objects() -> None:
    import gc

    from node.main import GC_GEN0_THRESHOLD, tune_gc

    before = gc.get_threshold()
    try:
        tune_gc()
        assert gc.get_threshold() == (GC_GEN0_THRESHOLD, before[1], before[2])
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


def test_a_data_dir_serves_one_node_process(tmp_path: Path) -> None:
    # a second process on a live node's store started, ran consensus as the same validator
    # (evidence of a double vote against it) and deleted the first one's node.pid
    import subprocess
    import sys

    from node.main import lock_data_dir

    data = tmp_path / "data"
    data.mkdir()
    (data / "node.pid").write_text("4242\n")
    lock = lock_data_dir(data)
    try:
        with pytest.raises(ConfigError, match=r"in use by another node process \(PID 4242\)"):
            lock_data_dir(data)
        code = (
            "from pathlib import Path; from node.main import lock_data_dir; "
            f"lock_data_dir(Path({str(data)!r}))"
        )
        other = subprocess.run(  # another process, as a second `suyuan node start` would be
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
        )
        assert other.returncode != 0
        assert "in use by another node process" in other.stderr
        # deleting node.lock does not free the folder (QA: a second process then ran)
        (data / "node.lock").unlink()
        with pytest.raises(ConfigError, match="in use by another node process"):
            lock_data_dir(data)
        other = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
        )
        assert other.returncode != 0
        assert "in use by another node process" in other.stderr
    finally:
        lock.close()
    lock_data_dir(data).close()  # free again once the holder is gone


def test_a_taken_listen_port_is_one_line_naming_it(tmp_path: Path) -> None:
    from tests.cli.helpers import suyuan

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        addr = f"127.0.0.1:{taken.getsockname()[1]}"
        err = _refusal(_setup(tmp_path, listen=addr))
        assert isinstance(err, ConfigError)
        assert str(err) == f"listen: {addr} is in use by another process"
        # the CLI: that line alone on stderr (gRPC's C core is never asked to bind it)
        cfg = tmp_path / "node.toml"
        cfg.write_text(_setup(tmp_path, listen=addr).to_toml())
        run = suyuan("node", "start", "--config", str(cfg), cwd=tmp_path)
    assert run.returncode == 2, run.stderr
    assert run.stderr.strip().splitlines() == [
        f"error: listen: {addr} is in use by another process"
    ]
    data = _setup(tmp_path, listen=addr).data_dir  # (QA-Q: a node.lock was left in it)
    assert not (data / "node.lock").exists()


def test_an_address_of_no_interface_and_a_running_node_are_named(tmp_path: Path) -> None:
    # QA-S: gRPC's C core logged its own error line before the node's one line; a second
    # start of a running node was told only "port in use"
    import os

    from tests.cli.helpers import suyuan

    cfg = tmp_path / "node.toml"
    cfg.write_text(_setup(tmp_path, listen="192.0.2.1:38050").to_toml())  # (TEST-NET-1)
    run = suyuan("node", "start", "--config", str(cfg), cwd=tmp_path)
    assert run.returncode == 2, run.stderr
    assert run.stderr.strip().splitlines() == [
        "error: listen: 192.0.2.1:38050 cannot be bound: no network interface of this host "
        "has that address"
    ]
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        addr = f"127.0.0.1:{taken.getsockname()[1]}"
        setup = _setup(tmp_path, listen=addr)
        setup.data_dir.mkdir(parents=True, exist_ok=True)
        (setup.data_dir / "node.pid").write_text(f"{os.getpid()}\n")  # (a live process)
        err = _refusal(setup)
    assert str(err) == (
        f"listen: {addr} is in use by another process (data_dir {setup.data_dir} names PID "
        f"{os.getpid()}, running: is this node started already?)"
    )


def test_a_read_only_data_folder_is_a_storage_error_exit_4(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # it was a ConfigError (exit 2), as if the config were wrong; the disk is (root ignores
    # chmod, so the kernel's answer is stood in for)
    import errno
    import os

    cfg = _setup(tmp_path)
    real_open = os.open

    def read_only(path: object, *args: object, **kw: object) -> int:
        if str(path).endswith("node.lock"):
            raise OSError(errno.EROFS, "Read-only file system")
        return real_open(path, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", read_only)
    err = _refusal(cfg)
    assert isinstance(err, StorageError)
    assert str(err).startswith(f"data_dir: cannot open {cfg.data_dir / 'node.lock'} (Read-only")
    assert "MiB free" in str(err)


def test_a_data_folder_that_cannot_be_made_for_want_of_permission_is_a_storage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    def denied(self: Path, *args: object, **kw: object) -> None:
        raise OSError(errno.EACCES, "Permission denied")

    cfg = _setup(tmp_path)
    monkeypatch.setattr(Path, "mkdir", denied)
    err = _refusal(cfg)
    assert isinstance(err, StorageError)
    assert str(err).startswith(f"data_dir: cannot create {cfg.data_dir} (Permission denied)")


def test_a_handler_cancelled_by_the_stop_is_not_logged_as_an_error() -> None:
    # QA: a plain `testnet down` left ERROR lines with CancelledError tracebacks from grpc
    from node.main import _not_cancelled

    def record(exc: BaseException | None) -> logging.LogRecord:
        info = (type(exc), exc, None) if exc is not None else None
        return logging.LogRecord("grpc._cython.cygrpc", logging.ERROR, "", 0, "x", (), info)

    assert not _not_cancelled(record(asyncio.CancelledError()))
    assert _not_cancelled(record(RuntimeError("a real failure")))
    assert _not_cancelled(record(None))


def test_a_rule_that_fails_with_a_bug_refuses_the_block_and_consensus_goes_on() -> None:
    # QA: a TypeError inside a rule, reached by a proposal, would have ended the consensus
    # task of every honest validator; the block is refused (nil) instead
    from types import SimpleNamespace

    from node.node import Node

    def broken(*a: object, **kw: object) -> None:
        raise TypeError("unhashable type: 'dict'")

    me = SimpleNamespace(
        bodies=SimpleNamespace(known_for=lambda *a: None),
        chain=SimpleNamespace(validate_block=broken),
        mempool=set(),
    )
    from proto import types_pb2

    assert Node._validate(me, types_pb2.Block()) is False  # type: ignore[arg-type]


def test_a_validator_with_no_peers_says_so_at_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # QA: a validator whose config lost its peers started silently and never caught up
    from node.genesis import Genesis
    from tests.fixtures import genesis as four_validators
    from tests.node.livenode import config, live_node, run, solo_genesis

    async def start(g: Genesis, where: Path) -> None:
        async with live_node(config(where), g):
            pass

    with caplog.at_level(logging.WARNING, logger="suyuan.node"):
        run(lambda: start(four_validators(), tmp_path / "four"))
    assert "config lists no peers: this node sends its votes to no one" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="suyuan.node"):
        run(lambda: start(solo_genesis(), tmp_path / "solo"))  # alone by design
    assert "lists no peers" not in caplog.text


def test_a_data_folder_locked_by_a_check_says_so(tmp_path: Path) -> None:
    # QA-T: `testnet restart` while `node check` ran was told that a second process would
    # sign as the same validator twice
    import os

    from node.main import CHECK_PID, lock_data_dir

    data = tmp_path / "data"
    data.mkdir()
    held = lock_data_dir(data, checking=True)
    try:
        (data / CHECK_PID).write_text(f"{os.getpid()}\n")
        with pytest.raises(ConfigError, match=r"in use by `suyuan node check` \(PID \d+\)"):
            lock_data_dir(data)
        (data / CHECK_PID).unlink()
        with pytest.raises(ConfigError, match="stop the node first to check its store"):
            lock_data_dir(data, checking=True)
    finally:
        held.close()


def test_a_client_gone_mid_answer_is_one_info_line() -> None:
    # QA-Y L3: a cancelled SubmitStream logged gRPC's ExecuteBatchError at ERROR, with 8
    # lines of traceback
    import logging
    import sys

    from node.main import client_gone

    class ExecuteBatchError(Exception):  # (gRPC's, by name: its module is private)
        pass

    try:
        raise ExecuteBatchError("Failed 'execute_batch': (<grpc._cython.cygrpc.SendMessage>)")
    except ExecuteBatchError:
        info = sys.exc_info()
    record = logging.LogRecord("grpc._cython.cygrpc", logging.ERROR, __file__, 1,
                               "ExecuteBatchError raised in core by servicer method [%s]",
                               ("/suyuan.v1.Ledger/SubmitStream",), info)  # fmt: skip
    assert client_gone(record)
    assert (record.levelno, record.exc_info) == (logging.INFO, None)
    assert record.getMessage() == (
        "a client went away while it was answered: ExecuteBatchError raised in core by "
        "servicer method [/suyuan.v1.Ledger/SubmitStream]"
    )
    other = logging.LogRecord("grpc._cython.cygrpc", logging.ERROR, __file__, 1, "boom", (), None)
    assert client_gone(other)
    assert other.levelno == logging.ERROR  # (anything else: as it was)
