"""A local testnet's files: keys, genesis, node configs and the manifest ``testnet.json``.

Layout of a testnet directory ``DIR`` (everything here is written by ``create``)::

    DIR/testnet.json            the manifest: nodes, addresses, paths, PIDs (atomic writes)
    DIR/.testnet.lock           flock(2) held while a command changes the testnet
    DIR/genesis.json            validators validator0..validator{N-1} + the demo members
    DIR/keys/NAME.key           unencrypted, throwaway keys (validators and demo members)
    DIR/configs/node{i}.toml    one NodeConfig per node (``NodeConfig.to_toml``)
    DIR/node{i}/                the node's data directory; its log is DIR/node{i}/node.log

Node ``i`` listens on ``127.0.0.1:(base_port + i)`` and lists every other node as a peer.
Paths in the manifest and configs are absolute. This module does no process handling.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from node.config import NodeConfig
from node.errors import ConfigError, InputError
from node.genesis import ConsensusParams, Genesis, Member, bind_prefixes, check_prefixes_apart
from node.keys import KeyPair, write_key_file
from node.permissions import genesis_permissions

MANIFEST_NAME = "testnet.json"
LOCK_NAME = ".testnet.lock"  # held by commands that change the testnet (testnet.net)
#: present while ``create`` writes a testnet, until its manifest is saved: a folder that has
#: it and no manifest is a creation that was killed, which ``create`` clears and redoes
CREATING_NAME = ".testnet.creating"
FORMAT = "suyuan-testnet/1"
DEFAULT_BASE_PORT = 26650
DEFAULT_CHAIN_ID = "suyuan-testnet"
MAX_NODES = 64

DEMO_MEMBERS: dict[str, tuple[str, ...]] = {
    "farm": ("enterprise",),
    "slaughterhouse": ("enterprise",),
    "processor": ("enterprise",),
    "distributor": ("enterprise",),
    "retailer": ("enterprise",),
    "inspector": ("inspector",),
    "regulator": ("regulator",),
}
VALIDATOR_ROLES = ("association",)

# Local-network timeouts. timeout_propose must cover building, sending and validating a
# full block on a loaded 2-core machine (a 2,000-record block takes ~0.5 s to validate
# there); a dead proposer costs one timeout_propose before the next round.
LOCAL_CONSENSUS = ConsensusParams(
    timeout_propose_ms=3000,
    timeout_prevote_ms=1000,
    timeout_precommit_ms=1000,
    timeout_delta_ms=1000,
    max_block_records=2000,
)


def validator_name(index: int) -> str:
    return f"validator{index}"


@dataclass(frozen=True)
class NodeEntry:
    """One node of the testnet as recorded in the manifest. ``pid`` is the last started."""

    index: int
    member: str
    address: str
    config: Path
    data_dir: Path
    log: Path
    pid: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "member": self.member,
            "address": self.address,
            "config": str(self.config),
            "data_dir": str(self.data_dir),
            "log": str(self.log),
            "pid": self.pid,
        }

    @classmethod
    def from_dict(cls, doc: Any, where: str) -> NodeEntry:
        if not isinstance(doc, dict):
            raise ConfigError(f"{where}: expected an object")
        try:
            pid = doc.get("pid")
            if pid is not None and (
                not isinstance(pid, int) or isinstance(pid, bool) or not 0 < pid < 1 << 22
            ):
                raise TypeError("pid")  # (Linux PIDs are below 2**22)
            return cls(
                index=int(doc["index"]),
                member=str(doc["member"]),
                address=str(doc["address"]),
                config=Path(doc["config"]),
                data_dir=Path(doc["data_dir"]),
                log=Path(doc["log"]),
                pid=pid,
            )
        except (KeyError, TypeError, ValueError) as e:
            raise ConfigError(f"{where}: missing or invalid field {e}") from e


@dataclass(frozen=True)
class Manifest:
    """The manifest of the testnet in ``dir`` (``dir/testnet.json``)."""

    dir: Path
    chain_id: str
    base_port: int
    nodes: tuple[NodeEntry, ...]
    members: tuple[str, ...] = field(default=tuple(DEMO_MEMBERS))

    @property
    def path(self) -> Path:
        return self.dir / MANIFEST_NAME

    @property
    def genesis(self) -> Path:
        return self.dir / "genesis.json"

    def key_file(self, member: str) -> Path:
        return self.dir / "keys" / f"{member}.key"

    def node(self, index: int) -> NodeEntry:
        """The node with ``index``; an InputError names the valid range."""
        if not 0 <= index < len(self.nodes):
            raise InputError(
                f"no node {index} in the testnet at {self.dir} (nodes 0..{len(self.nodes) - 1})"
            )
        return self.nodes[index]

    def with_pid(self, index: int, pid: int | None) -> Manifest:
        nodes = list(self.nodes)
        nodes[index] = replace(nodes[index], pid=pid)
        return replace(self, nodes=tuple(nodes))

    def owned_layout(self) -> list[tuple[Path, tuple[str, ...]]]:
        """(folder, names of the files the testnet writes in it), deepest folders first and
        the testnet folder itself last: what ``--fresh`` may delete. A folder is removed only
        once empty, so a file an operator put beside these stays, with its folder."""
        out: list[tuple[Path, tuple[str, ...]]] = []
        for n in self.nodes:
            out.append((n.data_dir / "store", ("data.mdb", "lock.mdb")))
            out.append(
                (n.data_dir, (n.log.name, "node.lock", "node.pid", "evidence.jsonl", "member"))
            )
        keys = sorted({*self.members, *(n.member for n in self.nodes)})
        out.append((self.dir / "keys", tuple(f"{m}.key" for m in keys)))
        out.append((self.dir / "configs", tuple(f"node{n.index}.toml" for n in self.nodes)))
        out.append((self.dir, (MANIFEST_NAME, self.genesis.name)))
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "chain_id": self.chain_id,
            "base_port": self.base_port,
            "genesis": str(self.genesis),
            "members": list(self.members),
            "nodes": [n.to_dict() for n in self.nodes],
        }

    def save(self) -> None:
        """Write ``testnet.json`` atomically (temporary file, fsync, rename)."""
        write_atomic(self.path, json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, directory: Path) -> Manifest:
        path = directory / MANIFEST_NAME
        try:
            doc = json.loads(path.read_bytes())
        except FileNotFoundError as e:
            raise InputError(f"no testnet in {directory} (no {MANIFEST_NAME})") from e
        except (OSError, ValueError) as e:
            raise ConfigError(f"{path}: unreadable testnet manifest ({e})") from e
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise ConfigError(f"{path}: not a testnet manifest (format is not {FORMAT!r})")
        nodes = doc.get("nodes")
        if not isinstance(nodes, list) or not nodes:
            raise ConfigError(f"{path}: field 'nodes' must be a non-empty list")
        entries = tuple(NodeEntry.from_dict(n, f"{path}: nodes[{i}]") for i, n in enumerate(nodes))
        if [n.index for n in entries] != list(range(len(entries))):
            raise ConfigError(f"{path}: node indexes must be 0..{len(entries) - 1} in order")
        # a node's files are where this folder has them, whatever paths were recorded: a
        # testnet copied or moved elsewhere must never reach (or delete) the original's
        d = directory.resolve()
        entries = tuple(_at(n, d) for n in entries)
        members = doc.get("members", list(DEMO_MEMBERS))
        if not isinstance(members, list) or not all(isinstance(m, str) for m in members):
            raise ConfigError(f"{path}: field 'members' must be a list of names")
        try:
            return cls(
                dir=directory.resolve(),
                chain_id=str(doc["chain_id"]),
                base_port=int(doc["base_port"]),
                nodes=entries,
                members=tuple(members),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise ConfigError(f"{path}: missing or invalid field {e}") from e


def is_testnet_dir(directory: Path) -> bool:
    """True when ``directory`` holds a testnet manifest."""
    return (directory / MANIFEST_NAME).is_file()


def check_dir_usable(directory: Path) -> None:
    """Refuse a folder that exists and holds anything but a testnet.

    Raises:
        InputError: ``directory`` is a file, or a non-empty folder without a manifest
            (for instance the repository's ``testnet/`` package).
    """
    if not directory.exists():
        return
    if not directory.is_dir():
        raise InputError(f"{directory}: exists and is not a folder")
    if is_testnet_dir(directory) or (directory / CREATING_NAME).exists():
        return  # (a testnet, or one whose creation was killed: ``create`` redoes it)
    if any(p.name != LOCK_NAME for p in directory.iterdir()):
        raise InputError(
            f"{directory}: folder is not empty and holds no testnet ({MANIFEST_NAME}); "
            "choose a new or empty folder"
        )


def node_config(man: Manifest, index: int) -> NodeConfig:
    """The config of node ``index``: its validator key, listen address and all other peers,
    each with the member expected there ("validator1@127.0.0.1:PORT")."""
    me = man.nodes[index]
    return NodeConfig(
        member=me.member,
        key_file=man.key_file(me.member),
        genesis=man.genesis,
        data_dir=me.data_dir,
        listen=me.address,
        peers=tuple(n.address for n in man.nodes if n.index != index),
        peer_members=tuple(n.member for n in man.nodes if n.index != index),
    )


def _node_paths(d: Path, index: int) -> tuple[Path, Path, Path]:
    """Node ``index``'s config, data folder and log inside the testnet folder ``d``."""
    return d / "configs" / f"node{index}.toml", d / f"node{index}", d / f"node{index}" / "node.log"


def _new_entry(d: Path, index: int, base_port: int) -> NodeEntry:
    config, data_dir, log = _node_paths(d, index)
    return NodeEntry(
        index=index,
        member=validator_name(index),
        address=f"127.0.0.1:{base_port + index}",
        config=config,
        data_dir=data_dir,
        log=log,
    )


def _at(n: NodeEntry, d: Path) -> NodeEntry:
    config, data_dir, log = _node_paths(d, n.index)
    return replace(n, config=config, data_dir=data_dir, log=log)


def config_text(man: Manifest, index: int, config: NodeConfig | None = None) -> str:
    """Node ``index``'s config file (``config``, default ``node_config``), its paths relative
    to the file's folder (``configs/``), so that the testnet folder may be moved or copied
    and stay self-contained."""
    c = config or node_config(man, index)
    here = man.dir / "configs"
    return replace(
        c,
        key_file=Path(os.path.relpath(c.key_file, here)),
        genesis=Path(os.path.relpath(c.genesis, here)),
        data_dir=Path(os.path.relpath(c.data_dir, here)),
    ).to_toml()


def check_configs(man: Manifest) -> None:
    """Refuse to start nodes whose config files point outside this testnet's folder (a
    testnet copied or moved before configs were written with relative paths).

    Raises:
        InputError: names the config and where it points.
    """
    for n in man.nodes:
        if not n.config.is_file():
            continue  # the start names a missing config itself
        c = NodeConfig.load(n.config)
        for what, got, want in (
            ("data_dir", c.data_dir, n.data_dir),
            ("genesis", c.genesis, man.genesis),
        ):
            if got.resolve() != want.resolve():
                raise InputError(
                    f"{n.config}: {what} is {got}, not this testnet's {want} (was the folder "
                    "copied or moved?); `suyuan testnet up --fresh` makes a new testnet here"
                )


def plan(directory: Path, nodes: int, base_port: int, chain_id: str) -> Manifest:
    """The manifest a new testnet would have (no files written)."""
    if not 1 <= nodes <= MAX_NODES:
        raise InputError(f"--nodes must be between 1 and {MAX_NODES}, got {nodes}")
    if not 1024 <= base_port <= 65535 - nodes + 1:
        raise InputError(
            f"--base-port {base_port}: ports {base_port}..{base_port + nodes - 1} "
            "must lie in 1024..65535"
        )
    d = directory.resolve()
    entries = tuple(_new_entry(d, i, base_port) for i in range(nodes))
    return Manifest(dir=d, chain_id=chain_id, base_port=base_port, nodes=entries)


def create(
    directory: Path,
    nodes: int,
    base_port: int = DEFAULT_BASE_PORT,
    chain_id: str = DEFAULT_CHAIN_ID,
    *,
    replacing: bool = False,
    gs1_prefixes: Sequence[str] = (),
) -> Manifest:
    """Write keys, genesis, configs, data folders and the manifest of a new testnet.

    ``replacing``: the folder held a testnet whose files were just removed (``--fresh``);
    files the testnet did not write (a saved proof, notes) are left where they are.
    ``gs1_prefixes``: ``MEMBER=PREFIX`` bindings for the genesis (rule gs1-prefix).

    Raises:
        InputError: ``directory`` is not new or empty, or the arguments are out of range.
        ConfigError: a ``gs1_prefixes`` binding is malformed (before anything is written).
    """
    if not replacing:
        check_dir_usable(directory)
    if is_testnet_dir(directory):
        raise InputError(f"{directory}: already holds a testnet")
    man = plan(directory, nodes, base_port, chain_id)
    roles = member_roles(man)
    check_bindings(roles, gs1_prefixes)
    marker = directory / CREATING_NAME
    directory.mkdir(parents=True, exist_ok=True)
    if marker.exists():  # a creation killed before its manifest: no node ever ran on it
        for name in roles:
            man.key_file(name).unlink(missing_ok=True)
        man.genesis.unlink(missing_ok=True)
        for n in man.nodes:
            n.config.unlink(missing_ok=True)
    marker.touch()
    members = []
    man.key_file(validator_name(0)).parent.mkdir(parents=True, exist_ok=True)
    for name, its_roles in roles.items():
        key = KeyPair.generate(name)
        write_key_file(man.key_file(name), key, None)
        members.append(Member(name, its_roles, key.public_key, display_name=name))
    members = bind_prefixes(members, gs1_prefixes)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    genesis = Genesis.build(
        chain_id,
        members,
        [n.member for n in man.nodes],
        consensus=LOCAL_CONSENSUS,
        permissions=genesis_permissions(),
        genesis_time=now,
    )
    write_atomic(man.genesis, genesis.to_json())
    for n in man.nodes:
        n.data_dir.mkdir(parents=True, exist_ok=True)
        write_atomic(n.config, config_text(man, n.index))
    man.save()
    marker.unlink(missing_ok=True)
    return man


def member_roles(man: Manifest) -> dict[str, tuple[str, ...]]:
    """The members of ``man``'s genesis and their roles: the validators, then the demo's."""
    return {**{n.member: VALIDATOR_ROLES for n in man.nodes}, **DEMO_MEMBERS}


def check_bindings(roles: dict[str, tuple[str, ...]], gs1_prefixes: Sequence[str]) -> None:
    """Refuse bad ``MEMBER=PREFIX`` bindings for a testnet of these members' roles, with
    the error ``create`` would raise, before any file is written or deleted."""
    members = [Member(name, r, b"") for name, r in roles.items()]
    check_prefixes_apart(bind_prefixes(members, gs1_prefixes))


def bindings(genesis: Genesis) -> set[str]:
    """The genesis's GS1 company prefix bindings as ``MEMBER=PREFIX`` strings."""
    return {f"{m.id}={p}" for m in genesis.members for p in m.gs1_prefixes}


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file, fsync and rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with tmp.open("w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
