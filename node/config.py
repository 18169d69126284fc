"""Node configuration: one TOML file per node.

Example (relative paths are resolved against the config file's folder)::

    member = "v0"                       # this node's member id (a validator, or not)
    key_file = "keys/v0.key"
    genesis = "genesis.json"
    data_dir = "node0"                  # store, pid, lock, evidence, member (logs: stderr)
    listen = "127.0.0.1:26650"
    peers = ["127.0.0.1:26651", "127.0.0.1:26652", "127.0.0.1:26653"]
                                        # "v1@127.0.0.1:26651": the member expected there;
                                        # a peer answering as another is not linked to

    [mempool]
    max_records = 10000                 # beyond this, Submit answers RESOURCE_EXHAUSTED
    max_bytes = 67108864                # (about 5 full blocks: bounds latency and memory)

    [limits]
    max_record_bytes = 0                # Submit only, <= genesis; 0: the genesis value
    rate_limit_per_s = 0                # per-node submissions per second; 0: unlimited

    [consensus]
    proposal_wait_ms = 5                # let a block fill this long before proposing
    idle_block_interval_ms = 0          # > 0: while no record waits, no block but one
                                        # empty block this often (node.idle); 0: a block
                                        # every round, as Tendermint

    [sync]
    helper_min_blocks = 32              # a pull at least this far behind parses blocks in a
                                        # helper process (the second core); 0: never

    [tls]                               # optional (node.tls): all three, or no section
    cert_file = "tls/node0.crt"         # this node's certificate chain (PEM): its port
    key_file = "tls/node0.key"          # serves TLS with it and this key (PEM);
    ca_file = "tls/ca.crt"              # peers are dialled over TLS, trusted if their
                                        # certificate chains to these CAs and names the
                                        # host this node dials

Unknown keys are refused with the field's name, so a typo never silently means a default.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from node.errors import ConfigError
from node.inputfile import read_input
from node.keys import is_member_name
from node.tls import TlsFiles

CONFIG_MAX_BYTES = 1024 * 1024  # a node config is a few hundred bytes


@dataclass(frozen=True)
class MempoolConfig:
    max_records: int = 10_000
    max_bytes: int = 64 * 1024 * 1024


@dataclass(frozen=True)
class LimitsConfig:
    max_record_bytes: int = 0
    rate_limit_per_s: int = 0


@dataclass(frozen=True)
class ConsensusConfig:
    proposal_wait_ms: int = 5
    idle_block_interval_ms: int = 0  # node.idle: 0 off; at most a day


@dataclass(frozen=True)
class SyncConfig:
    helper_min_blocks: int = 32


@dataclass(frozen=True)
class NodeConfig:
    member: str
    key_file: Path
    genesis: Path
    data_dir: Path
    listen: str
    peers: tuple[str, ...] = ()  # addresses (host:port)
    #: the member each of ``peers`` must answer as ("": any member), from "MEMBER@host:port"
    peer_members: tuple[str, ...] = ()
    mempool: MempoolConfig = field(default_factory=MempoolConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    consensus: ConsensusConfig = field(default_factory=ConsensusConfig)
    sync: SyncConfig = field(default_factory=SyncConfig)
    tls: TlsFiles | None = None
    source: Path | None = None

    @classmethod
    def load(cls, path: Path) -> NodeConfig:
        raw = read_input(path, "config", limit=CONFIG_MAX_BYTES, error=ConfigError)
        try:
            doc = tomllib.loads(raw.decode("utf-8"))
        except UnicodeDecodeError as e:
            raise ConfigError(f"{path}: cannot read config ({e})") from e
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{path}: invalid TOML ({e})") from e
        try:
            return cls.from_dict(doc, base=path.resolve().parent, source=path)
        except ConfigError as e:
            raise ConfigError(f"{path}: {e}") from e

    @classmethod
    def from_dict(
        cls, doc: dict[str, Any], *, base: Path, source: Path | None = None
    ) -> NodeConfig:
        top = {
            "member",
            "key_file",
            "genesis",
            "data_dir",
            "listen",
            "peers",
            "mempool",
            "limits",
            "consensus",
            "sync",
            "tls",
        }
        _unknown(doc, top, "")
        for name in ("member", "key_file", "genesis", "data_dir", "listen"):
            if not isinstance(doc.get(name), str) or not doc[name]:
                raise ConfigError(f"field '{name}' is required (a string)")
        listen = doc["listen"]
        _check_address(listen, "listen")
        entries = doc.get("peers", [])
        if not isinstance(entries, list) or not all(isinstance(p, str) for p in entries):
            raise ConfigError("field 'peers' must be a list of host:port strings")
        split = [_peer_entry(p, f"peers[{i}]") for i, p in enumerate(entries)]
        peers = [a for _, a in split]
        if listen in peers:
            raise ConfigError("field 'peers' lists this node's own listen address")
        if len(set(peers)) != len(peers):
            twice = next(p for p in peers if peers.count(p) > 1)
            raise ConfigError(f"field 'peers' lists {twice} twice")
        named = [m for m, _ in split if m]
        if len(set(named)) != len(named):  # (QA-W: one member at two spellings of an address)
            twice = next(m for m in named if named.count(m) > 1)
            where = " and ".join(a for m, a in split if m == twice)
            raise ConfigError(
                f"field 'peers' names member {twice!r} twice ({where}): a member's node is at "
                "one address"
            )
        return cls(
            member=doc["member"],
            key_file=_path(base, doc["key_file"]),
            genesis=_path(base, doc["genesis"]),
            data_dir=_path(base, doc["data_dir"]),
            listen=listen,
            peers=tuple(peers),
            peer_members=tuple(m for m, _ in split) if any(m for m, _ in split) else (),
            mempool=MempoolConfig(**_section(doc, "mempool", MempoolConfig())),
            limits=LimitsConfig(**_section(doc, "limits", LimitsConfig())),
            consensus=ConsensusConfig(**_section(doc, "consensus", ConsensusConfig())),
            sync=SyncConfig(**_section(doc, "sync", SyncConfig())),
            tls=_tls_section(doc, base),
            source=source,
        )

    def peer_entries(self) -> list[str]:
        """``peers`` as written: "MEMBER@host:port" where a member is expected."""
        members = self.peer_members or ("",) * len(self.peers)
        return [f"{m}@{a}" if m else a for m, a in zip(members, self.peers, strict=True)]

    def expected_member(self, address: str) -> str:
        """The member ``peers`` names at ``address`` ("": any member)."""
        if not self.peer_members:
            return ""
        return self.peer_members[self.peers.index(address)]

    def to_toml(self) -> str:
        """Render as TOML (absolute paths), the inverse of ``load``."""
        lines = [
            f"member = {_q(self.member)}",
            f"key_file = {_q(str(self.key_file))}",
            f"genesis = {_q(str(self.genesis))}",
            f"data_dir = {_q(str(self.data_dir))}",
            f"listen = {_q(self.listen)}",
            "peers = [" + ", ".join(_q(p) for p in self.peer_entries()) + "]",
        ]
        for name, sec in (
            ("mempool", self.mempool),
            ("limits", self.limits),
            ("consensus", self.consensus),
            ("sync", self.sync),
        ):
            lines.append(f"\n[{name}]")
            lines += [f"{k} = {int(v)}" for k, v in sec.__dict__.items()]
        if self.tls is not None:
            lines.append("\n[tls]")
            lines += [f"{k} = {_q(str(v))}" for k, v in self.tls.__dict__.items()]
        return "\n".join(lines) + "\n"


def _q(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _path(base: Path, value: str) -> Path:
    p = Path(value).expanduser()
    return p if p.is_absolute() else (base / p)


def _unknown(doc: dict[str, Any], allowed: set[str], where: str) -> None:
    extra = set(doc) - allowed
    if extra:
        name = sorted(extra)[0]
        raise ConfigError(f"unknown field '{where}{name}'")


def _section(doc: dict[str, Any], name: str, defaults: Any) -> dict[str, int]:
    sec = doc.get(name, {})
    if not isinstance(sec, dict):
        raise ConfigError(f"field '{name}' must be a table")
    _unknown(sec, set(defaults.__dict__), f"{name}.")
    out: dict[str, int] = {}
    for k, default in defaults.__dict__.items():
        v = sec.get(k, default)
        lo, hi = _BOUNDS.get(f"{name}.{k}", (0, _INT_MAX))
        if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
            raise ConfigError(f"field '{name}.{k}' must be an integer from {lo} to {hi}")
        out[k] = v
    return out


def _tls_section(doc: dict[str, Any], base: Path) -> TlsFiles | None:
    """``[tls]``: all of cert_file, key_file and ca_file (paths), or no section."""
    sec = doc.get("tls")
    if sec is None:
        return None
    names = ("cert_file", "key_file", "ca_file")
    if not isinstance(sec, dict):
        raise ConfigError("field 'tls' must be a table")
    _unknown(sec, set(names), "tls.")
    for name in names:
        if not isinstance(sec.get(name), str) or not sec[name]:
            raise ConfigError(
                f"field 'tls.{name}' is required in a [tls] section (a path): a node serves "
                "TLS with cert_file and key_file and trusts its peers' certificates by ca_file"
            )
    return TlsFiles(*(_path(base, sec[name]) for name in names))


_INT_MAX = 2**62  # beyond any real setting; larger values overflowed timers and sizes
#: Settings whose extremes disable the node without saying so (0 meaning "off" or
#: "unlimited" elsewhere in the file stays allowed there).
_BOUNDS = {
    "mempool.max_records": (1, _INT_MAX),  # 0 refused every submission ("mempool full")
    "mempool.max_bytes": (1, _INT_MAX),
    "consensus.proposal_wait_ms": (0, 60_000),  # beyond, a waiting record stalled the chain
    "consensus.idle_block_interval_ms": (0, 86_400_000),  # at least one block a day
}


def _peer_entry(entry: str, what: str) -> tuple[str, str]:
    """(member or "", address) of a ``peers`` entry, "host:port" or "MEMBER@host:port"."""
    member, at, addr = entry.rpartition("@")
    if at and not is_member_name(member):
        raise ConfigError(
            f"field '{what}' must be host:port or MEMBER@host:port (a member id: "
            f"lowercase letters, digits, '-', '_', '.'), got {entry!r}"
        )
    _check_address(addr, what)
    return member, addr


def _check_address(addr: str, what: str) -> None:
    host, sep, port = addr.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"field '{what}' must be host:port, got {addr!r}")
    if "/" in host or any(c.isspace() for c in host):  # (QA-W: "http://..." passed)
        raise ConfigError(
            f"field '{what}' must be host:port (a host name or IP address, no scheme or "
            f"path such as http://), got {addr!r}"
        )
