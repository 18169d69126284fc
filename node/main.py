"""`suyuan node start`: run one node until SIGTERM/SIGINT.

Start-up order: config -> genesis -> key -> store (refuses another chain's store) -> gRPC
server (Ledger, Peer, grpc.health.v1) -> consensus. Health turns SERVING only when all of
it runs. On SIGTERM the server stops accepting, consensus stops, the store is closed; a
SIGKILL at any instant loses nothing committed (every block is one durable transaction).
If the consensus task fails, the reason is logged and ``serve`` raises ``LedgerError`` after
the same clean stop, so the process exits non-zero; if the node finds that another process
runs its member's key (``Node.fatal``), it stops the same way with exit 2.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import gc
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer

from consensus.messages import VoteType
from consensus.signing import vote_sign_bytes
from consensus.signstate import SignState
from node import ed25519, ports
from node.chain import EXTRA_DBS
from node.config import NodeConfig
from node.errors import ConfigError, KeyFileError, LedgerError, StorageError
from node.genesis import Genesis
from node.grpc_errors import MalformedRequests
from node.keys import KeyPair, load_key_file
from node.node import Node, data_path
from node.peers import GRPC_OPTIONS, KEEPALIVE_MS
from node.service import LedgerService, PeerService
from node.statecheck import remove_stale_scratch
from node.store import Store, free_space
from node.twin import old_store_refusal, recent_own_signature, twin_refusal
from proto import services_pb2_grpc

log = logging.getLogger("suyuan.main")


def _setup_logging() -> None:
    level = os.environ.get("SUYUAN_LOG", "INFO").upper()
    logging.basicConfig(
        level=getattr(logging, level, logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def check_start(config: NodeConfig) -> tuple[Genesis, KeyPair]:
    """Load and cross-check what the config names; every refusal names its field.

    The key file must belong to ``member``, a member of the genesis with the same public
    key; ``limits.max_record_bytes`` may not exceed the genesis limit; ``data_dir`` must be
    creatable.
    """
    try:
        genesis = Genesis.load(config.genesis)
    except ConfigError as e:
        raise ConfigError(f"genesis: {e}") from e
    try:
        key = load_key_file(config.key_file)
    except KeyFileError as e:
        raise KeyFileError(f"key_file: {e}") from e
    if key.name != config.member:
        raise ConfigError(f"member: config says {config.member!r}, key file is {key.name!r}")
    member = genesis.member(key.name)
    if member is None:  # (QA-W: it named key_file, where member or genesis is wrong)
        raise ConfigError(
            f"member: {key.name!r} is not a member of {genesis.chain_id!r} (genesis "
            f"{config.genesis}): is `genesis` the consortium's file, and `member` this node's?"
        )
    if member.public_key != key.public_key:
        raise ConfigError(
            f"key_file: the public key of {config.key_file} is not {key.name!r}'s key in the "
            f"genesis of {genesis.chain_id!r}"
        )
    for address, expected in zip(config.peers, config.peer_members, strict=False):
        if expected and genesis.member(expected) is None:  # (QA-W: found only when it answered)
            raise ConfigError(
                f"peers: {expected}@{address} names {expected!r}, no member of {genesis.chain_id!r}"
            )
    limit = genesis.consensus.max_record_bytes
    if config.limits.max_record_bytes > limit:
        raise ConfigError(
            f"limits.max_record_bytes: {config.limits.max_record_bytes} is above the "
            f"genesis limit {limit} (a node may only be stricter at Submit)"
        )
    if config.data_dir.exists() and not config.data_dir.is_dir():  # (QA: "File exists")
        raise ConfigError(f"data_dir: {config.data_dir} is a file, not a folder")
    try:
        config.data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise _data_dir_error(f"cannot create {config.data_dir}", config.data_dir, e) from e
    return genesis, key


#: Why a data folder cannot be written that is the disk's, not the config's (exit 4).
_NOT_WRITABLE = frozenset({errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EDQUOT})


def _data_dir_error(what: str, data_dir: Path, e: OSError) -> LedgerError:
    """``data_dir: WHAT (reason)``: a ``StorageError`` when the folder is there but cannot
    be written (read-only, no permission, full), else a ``ConfigError`` (a path through a
    file, a name too long)."""
    if e.errno in _NOT_WRITABLE:
        near = data_dir if data_dir.exists() else data_dir.parent
        return StorageError(f"data_dir: {what} ({e.strerror}){free_space(near)}")
    return ConfigError(f"data_dir: {what} ({e.strerror})")


#: Objects allocated between young-generation collections. CPython's default (700) made
#: the cyclic GC the largest single cost of a loaded node: every record allocates dozens
#: of short-lived objects, and each collection also walks the mempool's survivors.
#: Measured with ``suyuan bench`` (4 nodes, open loop): 220 -> 174 us of CPU per record
#: per node. Cycles are rare on the record path; they are still collected, just in
#: bigger, rarer passes.
GC_GEN0_THRESHOLD = 200_000


def tune_gc() -> None:
    """Move start-up objects out of the collector's sight and collect young objects rarely."""
    gc.collect()
    gc.freeze()
    _, g1, g2 = gc.get_threshold()
    gc.set_threshold(GC_GEN0_THRESHOLD, g1, g2)


class DataDirLock:
    """The exclusive locks of one data folder, held while open (``close`` releases them;
    they also end with the process)."""

    def __init__(self, fds: list[int]) -> None:
        self._fds = fds

    def close(self) -> None:
        for fd in self._fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._fds = []


def lock_data_dir(data_dir: Path, *, checking: bool = False) -> DataDirLock:
    """Take the data folder exclusively for this process's lifetime: a ``flock`` on the
    folder itself and on its ``node.lock`` file (the lock an earlier version takes).

    Two node processes on one store would run consensus as one validator and sign twice
    (evidence against an honest validator), and each would corrupt the other's view. The
    folder's own lock cannot be undone by deleting a file (QA: with ``node.lock`` deleted,
    a second process ran and double-signed).

    Raises:
        ConfigError: another live process holds the lock (named by its ``node.pid``).
    """
    fds: list[int] = []
    for path, flags in (
        (data_dir, os.O_RDONLY | os.O_DIRECTORY),
        (data_dir / "node.lock", os.O_RDWR | os.O_CREAT),
    ):
        try:
            fd = os.open(path, flags, 0o644)
        except OSError as e:
            DataDirLock(fds).close()
            raise _data_dir_error(f"cannot open {path}", data_dir, e) from e
        fds.append(fd)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            DataDirLock(fds).close()
            checker = _live_pid(data_dir / CHECK_PID)
            if checker:  # (QA-T: a check's lock read as a second node signing twice)
                raise ConfigError(
                    f"data_dir: {data_dir} is in use by `suyuan node check` (PID {checker}): "
                    "wait for it to end"
                ) from e
            try:
                holder = (data_dir / "node.pid").read_text().strip() or "unknown"
            except OSError:
                holder = "unknown"
            tail = (
                "stop the node first to check its store"
                if checking
                else "one store, one process: a second would sign as the same validator twice"
            )
            raise ConfigError(
                f"data_dir: {data_dir} is in use by another node process (PID {holder}); {tail}"
            ) from e
    return DataDirLock(fds)


async def serve(config: NodeConfig, *, resync: bool = False) -> None:
    """Run the node of ``config`` until SIGTERM or SIGINT; ``resync``: its store was moved
    away on purpose and its earlier process is stopped (``node.twin``)."""
    genesis, key = check_start(config)
    problem = ports.bind_problem(config.listen)  # (before the data folder is made: QA-Q,
    if problem:  # a node.lock left)
        raise ConfigError(f"listen: {config.listen} {problem}{_running_here(config)}")
    lock = lock_data_dir(config.data_dir)  # before the store is opened or anything written
    try:
        await _serve(config, genesis, key, resync=resync)
    except OSError as e:  # a file of the data folder (the pid file, evidence) not written
        raise StorageError(
            f"cannot write in data_dir {config.data_dir}: {e.strerror or e}"
            f"{free_space(config.data_dir)}"
        ) from e
    finally:
        lock.close()


#: the file naming a running `suyuan node check`'s PID in the data folder it locks
CHECK_PID = "check.pid"


def _live_pid(path: Path) -> int:
    """The PID ``path`` names if that process runs, else 0."""
    try:
        pid = int(path.read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return 0
    return pid


def _running_here(config: NodeConfig) -> str:
    """A hint when the data folder's own node holds the port (QA-S: a second start of a
    running node was told only "port in use")."""
    pid = _live_pid(config.data_dir / "node.pid")
    if not pid:
        return ""
    return f" (data_dir {config.data_dir} names PID {pid}, running: is this node started already?)"


def claim_data_dir(data_dir: Path, member: str) -> None:
    """The data folder is one member's (its sign state is that key's): ``member`` records
    it; a folder another member's node wrote is refused (QA: a store opened under another
    member's key without a word). A folder from before this file is claimed."""
    path = data_dir / "member"
    try:
        owner = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        owner = ""
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"data_dir: cannot read {path} ({e})") from e
    if owner and owner != member:
        raise ConfigError(
            f"data_dir: {data_dir} holds member {owner!r}'s node, not {member!r}'s (each "
            "member's node keeps its own data folder): give this node an empty data folder "
            "and start it with --resync"
        )
    if not owner:
        path.write_text(member + "\n", encoding="utf-8")


async def _serve(
    config: NodeConfig, genesis: Genesis, key: KeyPair, *, resync: bool = False
) -> None:
    dial = _peer_credentials(config)  # (a bad [tls] file is named before anything is written)
    claim_data_dir(config.data_dir, key.name)
    for gone in remove_stale_scratch(config.data_dir):  # (review: a killed check's copy)
        log.warning("removed %s, left by an interrupted `suyuan node check`", gone)
    tune_gc()
    new_store = not (data_path(config) / "data.mdb").exists()
    store = Store.open(data_path(config), genesis.hash, extra_dbs=EXTRA_DBS)
    if new_store:
        log.info("data_dir %s held no store: a new one was made", config.data_dir)
    _claim_store(config, genesis, key, store)
    # a validator that never signed from this store: is another process signing with its
    # key? (``node.twin``; asked of the peers now, and seen again in what it syncs)
    validator = key.name in genesis.validators
    state = store.get_sign_state() if validator else None
    if validator and not resync and config.peers:
        signed = SignState.from_bytes(state) if state is not None else None
        await _refuse_if_signed_since(
            config, genesis, key, store, signed, new_store=new_store, credentials=dial
        )
    node = Node(config, genesis, key, store)
    node.resync = resync
    node.new_store = validator and state is None
    # no SO_REUSEPORT: a second node on a taken port must fail to bind, loudly
    server = grpc.aio.server(
        options=[*server_options(genesis), ("grpc.so_reuseport", 0)],
        interceptors=[MalformedRequests()],
    )
    ledger = LedgerService(node)
    services_pb2_grpc.add_LedgerServicer_to_server(ledger, server)
    peer_service = PeerService(node)
    services_pb2_grpc.add_PeerServicer_to_server(peer_service, server)
    health_servicer = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    try:
        if node.tls is None:
            port = server.add_insecure_port(config.listen)
        else:
            port = server.add_secure_port(config.listen, node.tls.server_credentials())
    except RuntimeError as e:
        raise ConfigError(f"listen: cannot bind {config.listen} ({e})") from e
    if port == 0:
        raise ConfigError(f"listen: cannot bind {config.listen}")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await server.start()
    failure = ""
    failed: BaseException | None = None
    try:
        await node.start()
        await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
        await health_servicer.set("suyuan.v1.Ledger", health_pb2.HealthCheckResponse.SERVING)
        (config.data_dir / "node.pid").write_text(f"{os.getpid()}\n")
        log.info("listening on %s", config.listen)
        consensus = node._tasks[0]
        waiter = asyncio.create_task(stop.wait())
        assert node.failure is not None
        watched: set[asyncio.Future[Any]] = {waiter, consensus, node.failure}
        done, _ = await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
        if node.failure in done:  # the node found it must not go on (``Node.fatal``)
            failed = node.failure.result()
            failure = str(failed)
        elif consensus in done:  # it ends only with the node: anything else is a crash
            exc = None if consensus.cancelled() else consensus.exception()
            failure = repr(exc) if exc is not None else "it ended"
            failed = exc
            # a storage or setup failure is told in one line (it names the cause and the free
            # space); a traceback is for a bug
            trace = exc if not isinstance(exc, StorageError | ConfigError) else None
            log.error("consensus stopped: %s; stopping the node", failure, exc_info=trace)
        waiter.cancel()
    finally:
        log.info("stopping")
        logging.getLogger("grpc._cython.cygrpc").addFilter(_not_cancelled)
        await health_servicer.enter_graceful_shutdown()
        await server.stop(grace=1.0)
        ledger.close()
        peer_service.close()
        await node.stop()
        store.close()
        with contextlib.suppress(FileNotFoundError):
            (config.data_dir / "node.pid").unlink()
        log.info("stopped")
    if failure:
        if isinstance(failed, StorageError | ConfigError):  # exit 4 (storage), 2 (setup)
            raise type(failed)(f"node stopped: {failed}")
        raise LedgerError(f"node stopped: its consensus task failed ({failure})")


def _claim_store(config: NodeConfig, genesis: Genesis, key: KeyPair, store: Store) -> None:
    """A store is one member's node's (its sign state is that key's): refuse (closing it)
    a store another member's node kept (QA-S: validator2's store copied under validator3's
    folder started without a word, signing from validator2's sign state); claim an
    unclaimed one."""
    problem = store_owner_problem(store, key.name, key.public_key, genesis)
    if problem:
        store.close()
        raise ConfigError(f"data_dir: {problem}; move it away and start with --resync")
    if not store.owner():
        store.claim(key.name)


def store_owner_problem(store: Store, member: str, public_key: bytes, genesis: Genesis) -> str:
    """Why ``store`` is not ``member``'s node's, or "": another member's node claimed it,
    or, unclaimed (an earlier version's), its sign state's votes are not ``public_key``'s
    (``node start`` and ``node check`` refuse it alike)."""
    owner = store.owner()
    if owner:
        if owner == member:
            return ""
        return (
            f"the store in {store.path} is {owner!r}'s node's, not {member!r}'s: its sign "
            f"state is {owner!r}'s node's own, not {member!r}'s; each member's node keeps its "
            "own store, never a copy of another's"
        )
    raw = store.get_sign_state()
    if raw is not None and not signed_by(SignState.from_bytes(raw), public_key, genesis):
        return (
            f"the sign state of the store in {store.path} was not signed with {member!r}'s "
            "key: the store is another validator's node's"
        )
    return ""


def signed_by(state: SignState, public_key: bytes, genesis: Genesis) -> bool:
    """Whether the votes a sign state holds carry ``public_key``'s signatures (True if it
    holds none, as after a proposal only)."""
    votes = (
        (VoteType.PREVOTE, state.prevote_round, state.prevote_hash, state.prevote_signature),
        (VoteType.PRECOMMIT, state.precommit_round, state.precommit_hash,
         state.precommit_signature),
    )  # fmt: skip
    for vtype, round_, block_hash, sig in votes:
        if round_ < 0 or not sig:
            continue
        data = vote_sign_bytes(genesis.hash, genesis.chain_id, vtype, state.height, round_,
                               block_hash)  # fmt: skip
        if not ed25519.verify(public_key, data, sig):
            return False
    return True


#: the largest request a node reads, at the least (QA-Y: 256 MiB was read, parsed and
#: refused, a 100 MB batch peaking the node at 7 GB)
MIN_REQUEST_BYTES = 16 * 1024 * 1024


def server_options(genesis: Genesis) -> list[tuple[str, Any]]:
    """The server's gRPC options: ``GRPC_OPTIONS`` (as its peer links), but requests of at
    most twice the genesis block size and 1 MiB, and ``MIN_REQUEST_BYTES`` at the least
    (what a node is sent is a batch of records, a vote, a compact proposal, evidence)."""
    most = max(MIN_REQUEST_BYTES, 2 * genesis.consensus.max_block_bytes + (1 << 20))
    return [
        *((k, most if k == "grpc.max_receive_message_length" else v) for k, v in GRPC_OPTIONS),
        # the peers' keepalive pings (every 10 s, with or without calls) are welcome: by
        # default a server takes one every 5 minutes and ends the link with GOAWAY
        # "too_many_pings" (QA-Y: logged between peers in normal running, then a redial)
        ("grpc.http2.min_recv_ping_interval_without_data_ms", KEEPALIVE_MS // 2),
    ]


def _peer_credentials(config: NodeConfig) -> grpc.ChannelCredentials | None:
    """How this node dials its peers: over TLS when its config has a ``[tls]`` section
    (its files read and its key checked against its certificate: ``ConfigError``)."""
    if config.tls is None:
        return None
    tls = config.tls.load()
    config.tls.check()
    tls.check_pair()
    return tls.channel_credentials()


async def _refuse_if_signed_since(
    config: NodeConfig,
    genesis: Genesis,
    key: KeyPair,
    store: Store,
    state: SignState | None,
    *,
    new_store: bool = False,
    credentials: grpc.ChannelCredentials | None = None,
) -> None:
    """Raise ``ConfigError`` if a peer's recent blocks carry this validator's precommit
    above what its store has signed (``node.twin``): with no sign state (``state`` None),
    another process signs with its key or its store was moved away for a resync; with one,
    the store is older than what the key has signed (restored from a backup). ``store`` is
    closed first, and removed if this start made it (``new_store``): nothing is left
    behind. ``credentials``: how the peers are dialled (``_peer_credentials``, made once)."""
    above = state.height if state is not None else 0
    try:
        found = await recent_own_signature(
            config.peers, genesis, key.name, above=above, credentials=credentials
        )
    except BaseException:
        store.close()
        raise
    if found is None:
        return
    store.close()
    if new_store:
        for name in ("data.mdb", "lock.mdb"):
            with contextlib.suppress(FileNotFoundError):
                (data_path(config) / name).unlink()
        with contextlib.suppress(OSError):  # (QA-W: an empty store folder was left; only
            data_path(config).rmdir()  # when empty: nothing else of it is touched)
    peer, height = found
    found_text = f"block {height}, as peer {peer} has it, carries {key.name!r}'s signature"
    raise ConfigError(
        twin_refusal(found_text, key.name)
        if state is None
        else old_store_refusal(found_text, key.name, state.height)
    )


def _not_cancelled(record: logging.LogRecord) -> bool:
    """While the node stops, grpc cancels the handlers still running (a peer's stream, a
    Submit waiting for its commit) and logs each as an ERROR with a traceback (QA: on a
    plain ``testnet down``); that cancellation is the stop itself, so it is not logged."""
    exc = record.exc_info[0] if record.exc_info else None
    return not (exc is not None and issubclass(exc, asyncio.CancelledError))


def client_gone(record: logging.LogRecord) -> bool:
    """A client that went away while its stream was answered (cancelled, or its deadline
    passed) makes gRPC log the failed write as an ERROR with a traceback (QA-Y: a
    cancelled ``SubmitStream``); it is told as one INFO line: nothing failed here."""
    exc = record.exc_info[0] if record.exc_info else None
    if exc is not None and exc.__name__ == "ExecuteBatchError":
        record.levelno, record.levelname = logging.INFO, "INFO"
        record.exc_info = record.exc_text = None
        record.msg, record.args = (
            "a client went away while it was answered: %s",
            (record.getMessage().splitlines()[0][:200],),
        )
    return True


def run_node(config_path: Path, *, resync: bool = False) -> None:
    """Load the config and serve until stopped. Bad config raises ``ConfigError``."""
    config = NodeConfig.load(config_path)
    _setup_logging()
    logging.getLogger("grpc._cython.cygrpc").addFilter(client_gone)
    asyncio.run(serve(config, resync=resync))
