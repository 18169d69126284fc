"""A local N-node consortium: bring it up, look at it, inject faults, take it down.

Each operation takes the testnet directory (see ``testnet.manifest`` for its layout) and
keeps the manifest's PIDs current, so any later command — in another process — can find
and stop every node this module started.

Decisions:
  * ``up`` on a new or empty folder creates a testnet; on a stopped testnet it starts the
    same nodes again, keeping keys, genesis and data; ``fresh=True`` first deletes what the
    testnet wrote (only the paths it owns) and creates a new one. A running testnet, or a
    folder holding anything else (such as the repository's ``testnet/`` package), is refused.
  * "healthy" means the node answers ``grpc.health.v1.Health/Check`` for service ``""``
    with SERVING. Waiting polls every 0.1 s up to a deadline; a node that exits while we
    wait fails the wait at once, with the tail of its log.
  * When ``up`` or ``restart`` fails, every process it started is stopped again.
  * Commands that change the testnet hold an exclusive flock on ``DIR/.testnet.lock``
    (waiting at most ``LOCK_WAIT_S``), so two of them never interleave manifest updates;
    ``status`` takes no lock.
  * Faults go to one node by index: ``kill`` (SIGKILL), ``pause`` (SIGSTOP), ``resume``
    (SIGCONT), ``restart`` (stop if running, start, wait healthy).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import os
import signal
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

from node import ports
from node.client import LedgerClient
from node.config import NodeConfig
from node.errors import InputError, LedgerError, NodeUnavailableError, StorageError
from node.genesis import Genesis
from node.store import free_space
from testnet import manifest as mf
from testnet import procs
from testnet.manifest import Manifest, NodeEntry

_P = ParamSpec("_P")
_R = TypeVar("_R")
DEFAULT_NODES = 4
LOCK_WAIT_S = 120.0
DEFAULT_UP_TIMEOUT_S = 60.0
DEFAULT_STOP_TIMEOUT_S = 10.0
_POLL_S = 0.1


class TestnetStartError(NodeUnavailableError):
    """A node did not become healthy. ``log_tail`` holds the end of its log."""

    def __init__(self, message: str, index: int, log_tail: str) -> None:
        super().__init__(message)
        self.index = index
        self.log_tail = log_tail


@dataclass(frozen=True)
class NodeStatus:
    """What ``status`` reports for one node. ``height`` is None when it did not answer."""

    index: int
    member: str
    address: str
    pid: int | None
    running: bool
    paused: bool
    height: int | None
    head_hash: str | None
    log: Path

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "member": self.member,
            "address": self.address,
            "pid": self.pid,
            "running": self.running,
            "paused": self.paused,
            "height": self.height,
            "head_hash": self.head_hash,
            "log": str(self.log),
        }


# ---------------------------------------------------------------------- locking


@contextlib.contextmanager
def locked(directory: Path, wait: float = LOCK_WAIT_S) -> Iterator[None]:
    """Hold the testnet's exclusive lock (no-op while ``directory`` does not exist).

    Raises:
        InputError: another command held the lock for ``wait`` seconds.
    """
    if not directory.is_dir():
        yield
        return
    fd = os.open(directory / mf.LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise InputError(
                        f"the testnet in {directory} is busy: another suyuan testnet command "
                        f"has held it for {wait:g}s"
                    ) from None
                time.sleep(_POLL_S)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _exclusive(fn: Callable[Concatenate[Path, _P], _R]) -> Callable[Concatenate[Path, _P], _R]:
    @functools.wraps(fn)
    def wrapper(directory: Path, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        with locked(directory):
            return fn(directory, *args, **kwargs)

    return wrapper


# ---------------------------------------------------------------------- up / down


def up(
    directory: Path,
    nodes: int | None = None,
    base_port: int | None = None,
    *,
    chain_id: str | None = None,
    fresh: bool = False,
    timeout: float = DEFAULT_UP_TIMEOUT_S,
    gs1_prefixes: Sequence[str] | None = None,
) -> Manifest:
    """Create (or reuse) the testnet in ``directory``, start every node, wait until healthy.

    ``gs1_prefixes``: ``MEMBER=PREFIX`` bindings of a new testnet's genesis (rule
    gs1-prefix); for an existing one they must be the genesis's own.

    Raises:
        InputError: the folder is unusable, the testnet is already running, it has another
            shape than asked for (without ``fresh``), or a port is taken.
        ConfigError: a ``gs1_prefixes`` binding is malformed.
        TestnetStartError: a node exited or was not healthy within ``timeout`` seconds; all
            nodes started here have been stopped again.
        StorageError: the folder's filesystem is full or read-only (exit 4, with the free
            space; QA: "cannot write the output", exit 2).
    """
    mf.check_dir_usable(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with locked(directory):
            return _up(directory, nodes, base_port, chain_id, fresh, timeout, gs1_prefixes)
    except OSError as e:
        if e.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):
            raise
        raise StorageError(
            f"cannot write in {directory}: {e.strerror}{free_space(directory)}"
        ) from e


def _up(
    directory: Path,
    nodes: int | None,
    base_port: int | None,
    chain_id: str | None,
    fresh: bool,
    timeout: float,
    gs1_prefixes: Sequence[str] | None = None,
) -> Manifest:
    mf.check_dir_usable(directory)
    if mf.is_testnet_dir(directory):
        man = _load(directory)
        running = [n.index for n in man.nodes if procs.is_ours(n.pid, n.config)]
        if running:
            raise InputError(
                f"the testnet in {directory} is already running (nodes "
                f"{', '.join(map(str, running))}); run `suyuan testnet down --dir {directory}`"
            )
        if fresh:
            shape = _shape(nodes, base_port, chain_id)
            # bad arguments and taken ports are refused before anything is deleted
            new = mf.plan(directory, *shape)
            _check_ports(new)
            mf.check_bindings(mf.member_roles(new), gs1_prefixes or ())
            _wipe(man)
            man = mf.create(directory, *shape, replacing=True, gs1_prefixes=gs1_prefixes or ())
        else:
            _check_same_shape(man, nodes, base_port, chain_id)
            _check_same_bindings(man, gs1_prefixes)
            _check_data_dirs(man)
            _check_ports(man)
    else:  # nothing is written for a testnet that could not start on its ports
        shape = _shape(nodes, base_port, chain_id)
        _check_ports(mf.plan(directory, *shape))
        man = mf.create(directory, *shape, gs1_prefixes=gs1_prefixes or ())
    return _start_and_wait(man, [n.index for n in man.nodes], timeout)


def _shape(nodes: int | None, base_port: int | None, chain_id: str | None) -> tuple[int, int, str]:
    """A new testnet's (nodes, base port, chain id): the given ones, else the defaults."""
    return (
        nodes or DEFAULT_NODES,
        base_port or mf.DEFAULT_BASE_PORT,
        chain_id or mf.DEFAULT_CHAIN_ID,
    )


def _check_data_dirs(man: Manifest) -> None:
    """Each node's data folder is a folder, if it exists (QA: a file there gave "File
    exists", naming neither the node nor the fix)."""
    for n in man.nodes:
        if (n.data_dir.exists() or n.data_dir.is_symlink()) and not n.data_dir.is_dir():
            raise InputError(
                f"{n.data_dir}: node {n.index}'s data folder is not a folder (a file, or a "
                "link to none); move it away"
            )


def _check_ports(man: Manifest) -> None:
    busy = _wait_ports_free([n.address for n in man.nodes], PORT_RELEASE_WAIT_S)
    if busy:
        raise InputError(f"port(s) in use on 127.0.0.1: {', '.join(busy)}; try --base-port")


@_exclusive
def down(directory: Path, timeout: float = DEFAULT_STOP_TIMEOUT_S) -> list[int]:
    """Stop every node (SIGTERM, then SIGKILL after ``timeout``); returns the PIDs stopped.

    Raises:
        NodeUnavailableError: a process survived SIGKILL (it is named).
    """
    man = _load(directory)
    live = [(n.pid, n.config) for n in man.nodes if n.pid and procs.is_ours(n.pid, n.config)]
    survivors = procs.stop_many(live, timeout)
    for n in man.nodes:
        if n.pid not in survivors:
            man = man.with_pid(n.index, None)
    man.save()
    if survivors:
        raise NodeUnavailableError(f"processes {survivors} did not stop, even on SIGKILL")
    return [pid for pid, _ in live]


# ---------------------------------------------------------------------- faults


@_exclusive
def kill(directory: Path, index: int) -> int:
    """SIGKILL node ``index``; returns its PID. The manifest keeps the PID (not running)."""
    man = _load(directory)
    n = _running(man, index)
    assert n.pid is not None
    procs.send(n.pid, n.config, signal.SIGKILL)
    if not procs.wait_gone(n.pid, n.config, 5.0):
        raise NodeUnavailableError(f"node {index} (pid {n.pid}) survived SIGKILL")
    return n.pid


@_exclusive
def pause(directory: Path, index: int) -> int:
    """SIGSTOP node ``index`` (it keeps its sockets but answers nothing); returns its PID."""
    n = _running(Manifest.load(directory), index)
    assert n.pid is not None
    procs.send(n.pid, n.config, signal.SIGSTOP)
    wait_until(lambda: procs.is_paused(n.pid), 5.0, f"node {index} did not stop on SIGSTOP")
    return n.pid


@_exclusive
def resume(directory: Path, index: int) -> tuple[int, bool]:
    """SIGCONT node ``index``; returns its PID and whether it was paused."""
    n = _running(Manifest.load(directory), index)
    assert n.pid is not None
    was_paused = procs.is_paused(n.pid)
    procs.send(n.pid, n.config, signal.SIGCONT)
    wait_until(lambda: not procs.is_paused(n.pid), 5.0, f"node {index} did not resume")
    return n.pid, was_paused


@_exclusive
def restart(
    directory: Path, index: int, timeout: float = DEFAULT_UP_TIMEOUT_S, *, resync: bool = False
) -> int:
    """Stop node ``index`` if it runs, start it again with its data, wait until healthy;
    ``resync``: its store was removed on purpose (``suyuan node start --resync``).

    Returns the new PID. Raises ``TestnetStartError`` (the new process is stopped again).
    """
    man = _load(directory)
    n = man.node(index)
    running = bool(n.pid) and procs.is_ours(n.pid, n.config)
    if running:
        _check_restartable(man, n)
    if running and n.pid and not procs.stop(n.pid, n.config, timeout):
        raise NodeUnavailableError(f"node {index} (pid {n.pid}) did not stop")
    busy = busy_addresses([n.address])
    if busy:
        raise InputError(f"node {index}'s port is in use: {busy[0]}")
    man = _start_and_wait(man.with_pid(index, None), [index], timeout, resync=resync)
    pid = man.nodes[index].pid
    assert pid is not None
    return pid


def _check_restartable(man: Manifest, n: NodeEntry) -> None:
    """Refuse to stop a running node that could not start again: its config no longer loads,
    or genesis.json changed since it started (its store belongs to the genesis it runs)."""
    NodeConfig.load(n.config)
    now = Genesis.load(man.genesis).hash
    try:
        with node_client(n, 2.0) as c:
            running = bytes(c.status().genesis_hash)
    except LedgerError:
        return  # it does not answer: restarting it is what the caller wants
    if running != now:
        raise InputError(
            f"{man.genesis} changed since node {n.index} started (genesis {now.hex()[:16]}..., "
            f"the node runs {running.hex()[:16]}...): it could not start again on its store, "
            "so it was left running; restore the genesis file"
        )


# ---------------------------------------------------------------------- status


def status(directory: Path, rpc_timeout: float = 1.0) -> list[NodeStatus]:
    """Process state of every node, and height/head from ``Ledger.Status`` when it answers."""
    man = _load(directory, save=False)  # (status takes no lock: it writes nothing)
    out = []
    for n in man.nodes:
        running = procs.is_ours(n.pid, n.config)
        paused = running and procs.is_paused(n.pid)
        height: int | None = None
        head: str | None = None
        if running and not paused:
            try:
                with node_client(n, rpc_timeout) as c:
                    st = c.status()
                height, head = int(st.height), st.head_hash.hex()
            except LedgerError:
                pass  # reported as height None: the node did not answer in time
        out.append(
            NodeStatus(
                index=n.index,
                member=n.member,
                address=n.address,
                pid=n.pid if running else None,
                running=running,
                paused=paused,
                height=height,
                head_hash=head,
                log=n.log,
            )
        )
    return out


#: How long ``up`` waits for its ports to be released (a testnet just stopped, or another
#: process about to let go) before it refuses with "port(s) in use".
PORT_RELEASE_WAIT_S = 5.0


def _wait_ports_free(addresses: list[str], wait_s: float) -> list[str]:
    """``busy_addresses`` polled until none is busy or ``wait_s`` passed; the last answer."""
    deadline = time.monotonic() + wait_s
    while True:
        busy = busy_addresses(addresses)
        if not busy or time.monotonic() >= deadline:
            return busy
        time.sleep(0.1)  # polling the kernel's port table: there is no event to wait on


def busy_addresses(addresses: list[str]) -> list[str]:
    """The ``127.0.0.1:PORT`` addresses that cannot be bound now (something listens)."""
    return [addr for addr in addresses if ports.in_use(addr)]


# ---------------------------------------------------------------------- internals


def _load(directory: Path, *, save: bool = True) -> Manifest:
    """The manifest, with the nodes a killed ``testnet up`` started but never recorded:
    a live ``node start --config CONFIG`` that the node's own ``node.pid`` names is taken
    in (and saved, unless ``save`` is False), so ``down`` stops it and ``up`` knows it
    runs (QA: a node left running that no testnet command could see)."""
    man = Manifest.load(directory)
    found = False
    for n in man.nodes:
        if n.pid and procs.is_ours(n.pid, n.config):
            continue
        try:
            pid = int((n.data_dir / "node.pid").read_text().strip())
        except (OSError, ValueError):
            continue
        if 0 < pid < 2**22 and procs.is_ours(pid, n.config):
            man, found = man.with_pid(n.index, pid), True
    if found and save:
        man.save()
    return man


def _start_and_wait(
    man: Manifest, indexes: list[int], timeout: float, *, resync: bool = False
) -> Manifest:
    mf.check_configs(man)  # a copied or moved folder's old configs point at the original
    started: list[tuple[int, int, Path]] = []  # (index, pid, config), noted before anything
    ok = False  # else (QA: a Ctrl-C between a start and its note left a node running)
    try:
        for i in indexes:
            n = man.nodes[i]
            pid = procs.start_node(n.config, n.log, man.dir, resync=resync)
            started.append((i, pid, n.config))
            man = man.with_pid(i, pid)
            man.save()  # recorded at once: a crash of this process still leaves them findable
        wait_healthy(man, indexes, timeout)
        ok = True
        return man
    finally:
        if not ok:
            procs.stop_many([(pid, config) for _, pid, config in started], 5.0)
            for i, _, _ in started:
                man = man.with_pid(i, None)
            man.save()


def _exited(i: int, n: NodeEntry) -> TestnetStartError:
    """A node that exited before it became healthy: its own error line (from its log) and,
    when it was our child, its exit code (4 storage, 2 setup) instead of 5."""
    tail = procs.log_tail(n.log)
    said = [ln for ln in tail.splitlines() if ln.startswith("error: ")]
    why = f": {said[-1].removeprefix('error: ')}" if said else ""
    err = TestnetStartError(  # (its own line says why: no need to print its log's end)
        f"node {i} ({n.member}) exited before it became healthy{why}; log: {n.log}",
        i,
        "" if said else tail,
    )
    code = procs.exit_code(n.pid, wait_s=5.0) if n.pid else None
    if code in (2, 4):
        err.exit_code = code
    return err


def wait_healthy(man: Manifest, indexes: list[int], timeout: float) -> None:
    """Poll each node's health until all are SERVING, at most ``timeout`` seconds.

    Raises:
        TestnetStartError: a node's process exited, or the deadline passed.
    """
    deadline = time.monotonic() + timeout
    pending = list(indexes)
    clients = {i: node_client(man.nodes[i], 1.0) for i in indexes}
    try:
        for _ in range(int(timeout / _POLL_S) + 2):
            for i in list(pending):
                n = man.nodes[i]
                if not procs.is_ours(n.pid, n.config):
                    raise _exited(i, n)
                left = deadline - time.monotonic()
                if clients[i].healthy(timeout=max(0.05, min(1.0, left))):
                    pending.remove(i)
            if not pending:
                return
            if time.monotonic() >= deadline:
                break
            time.sleep(_POLL_S)
        i = pending[0]
        n = man.nodes[i]
        raise TestnetStartError(
            f"node {i} ({n.member}) at {n.address} not healthy after {timeout:g}s; log: {n.log}",
            i,
            procs.log_tail(n.log),
        )
    finally:
        for c in clients.values():
            c.close()


def node_client(n: NodeEntry, timeout: float) -> LedgerClient:
    """A client of testnet node ``n``: over TLS when its config has a ``[tls]`` section
    (trusting its own ``ca_file``), else plain, whatever ``SUYUAN_TLS_CA`` says (QA-Z: with
    it set, every testnet command read the plain nodes as not answering)."""
    try:
        tls = NodeConfig.load(n.config).tls
    except LedgerError:
        tls = None  # (the start names a bad config itself)
    if tls is None:
        return LedgerClient(n.address, timeout=timeout, plain=True)
    return LedgerClient(n.address, timeout=timeout, credentials=tls.load().channel_credentials())


def _running(man: Manifest, index: int) -> NodeEntry:
    n = man.node(index)
    if not procs.is_ours(n.pid, n.config):
        raise InputError(f"node {index} ({n.member}) is not running")
    return n


def wait_until(cond: Callable[[], bool], timeout: float, message: str) -> None:
    """Poll ``cond`` every 20 ms until true; ``NodeUnavailableError(message)`` after
    ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() >= deadline:
            raise NodeUnavailableError(message)
        time.sleep(0.02)


def _check_same_shape(
    man: Manifest, nodes: int | None, base_port: int | None, chain_id: str | None
) -> None:
    if nodes is not None and nodes != len(man.nodes):
        raise InputError(
            f"{man.dir} holds a {len(man.nodes)}-node testnet; "
            "omit --nodes to restart it, or pass --fresh to replace it"
        )
    if base_port is not None and base_port != man.base_port:
        raise InputError(
            f"{man.dir} uses base port {man.base_port}; "
            "omit --base-port to restart it, or pass --fresh to replace it"
        )
    if chain_id is not None and chain_id != man.chain_id:  # (QA: ignored without a word)
        raise InputError(
            f"{man.dir} holds chain {man.chain_id!r}; "
            "omit --chain-id to restart it, or pass --fresh to replace it"
        )


def _check_same_bindings(man: Manifest, gs1_prefixes: Sequence[str] | None) -> None:
    """Bindings given for an existing testnet are its genesis's (they were ignored)."""
    if gs1_prefixes is None:
        return
    have = mf.bindings(Genesis.load(man.genesis))
    if set(gs1_prefixes) != have:
        now = ", ".join(sorted(have)) or "no GS1 company prefixes"
        raise InputError(
            f"{man.dir} holds a testnet whose genesis binds {now}; omit --gs1-prefix to "
            "restart it, or pass --fresh to replace it"
        )


def _wipe(man: Manifest) -> None:
    """Delete only the files the testnet wrote (``Manifest.owned_layout``), then their
    folders if that left them empty; nothing outside its folder whatever a manifest says
    (checked for every path before any is deleted). A folder that is a symbolic link is
    unlinked, never followed; an operator's own files (and so their folders) stay."""
    inside = Path(os.path.abspath(man.dir))
    layout = [(Path(os.path.abspath(f)), names) for f, names in man.owned_layout()]
    for folder, names in layout:
        for p in (folder, *(folder / n for n in names)):
            if p != inside and not p.is_relative_to(inside):
                raise InputError(f"{p}: outside the testnet folder {inside}; nothing was deleted")
    for folder, names in layout:
        if folder != inside and _linked_between(inside, folder.parent):
            continue  # inside a linked folder: the link itself is removed, not its target
        if folder != inside and folder.is_symlink():
            folder.unlink()
            continue
        if not folder.is_dir():
            continue
        for name in names:
            (folder / name).unlink(missing_ok=True)  # (a linked file: the link)
        if folder != inside:
            with contextlib.suppress(OSError):  # not empty: an operator's files are there
                folder.rmdir()


def _linked_between(top: Path, path: Path) -> bool:
    """True if ``path`` or a folder between it and ``top`` is a symbolic link."""
    while path != top and path.is_relative_to(top):
        if path.is_symlink():
            return True
        path = path.parent
    return False
