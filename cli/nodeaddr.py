"""Which node a command talks to: ``--node ADDR``, or the first node of the local testnet.

Resolution order (the CLI contract in DESIGN.md, "Command line"):

1. an explicit ``--node ADDR``;
2. otherwise ``$SUYUAN_NODE`` (a real consortium's node, set once per shell);
3. otherwise the testnet folder named by ``$SUYUAN_TESTNET``, then ``./testnet`` — the
   first that holds a testnet manifest (``testnet.json``) — and its node 0. (In the
   repository root ``./testnet`` is the Python package: without a manifest it is skipped.)

When the address came from — or belongs to — a testnet, the target also names that
testnet's folder, so commands can default to its ``genesis.json``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from node.errors import ConfigError, InputError
from testnet.manifest import Manifest, is_testnet_dir

TESTNET_ENV = "SUYUAN_TESTNET"
NODE_ENV = "SUYUAN_NODE"
#: the ``--node`` option of every command that asks a node (``resolve_node`` reads it)
NodeOpt = Annotated[
    str | None,
    typer.Option(
        "--node",
        help="host:port (default: $SUYUAN_NODE, else node 0 of ./testnet or $SUYUAN_TESTNET).",
    ),
]


@dataclass(frozen=True)
class NodeTarget:
    """A node address, and the testnet folder it belongs to (None: not a known testnet)."""

    address: str
    testnet_dir: Path | None = None

    @property
    def genesis(self) -> Path | None:
        """The genesis a command uses without ``--genesis``: the testnet's, when the node
        belongs to a testnet; else ``./genesis.json`` if there is one (as ``record sign``
        reads it; QA: commands asked for --genesis beside one); else None. A node of
        another chain refuses what was signed for this one, naming both."""
        if self.testnet_dir is not None:
            return self.testnet_dir / "genesis.json"
        return local_genesis()


def local_genesis() -> Path | None:
    """``./genesis.json`` if there is one, else None."""
    here = Path("genesis.json")
    return here if here.is_file() else None


def candidate_dirs(cwd: Path | None = None, env: Mapping[str, str] | None = None) -> list[Path]:
    """Where a testnet is looked for, in order: ``$SUYUAN_TESTNET``, then ``./testnet``."""
    env = os.environ if env is None else env
    cwd = Path.cwd() if cwd is None else cwd
    out = []
    named = env.get(TESTNET_ENV, "").strip()
    if named:
        p = Path(named).expanduser()
        out.append(p if p.is_absolute() else cwd / p)
    out.append(cwd / "testnet")
    return out


def find_testnet(cwd: Path | None = None, env: Mapping[str, str] | None = None) -> Path | None:
    """The first candidate folder that holds a testnet manifest, or None."""
    for d in candidate_dirs(cwd, env):
        if is_testnet_dir(d):
            return d
    return None


def resolve_node(
    node: str | None, cwd: Path | None = None, env: Mapping[str, str] | None = None
) -> NodeTarget:
    """The node to talk to; see the module docstring for the order.

    Raises:
        InputError: no ``--node`` and no testnet found, or ``ADDR`` is not host:port.
    """
    testnet = find_testnet(cwd, env)
    if node is None:  # (QA: outside a testnet every client command needed --node)
        named = (os.environ if env is None else env).get(NODE_ENV, "").strip()
        if named:
            try:
                check_address(named)
            except InputError:
                raise InputError(
                    f"${NODE_ENV} must be host:port (e.g. 127.0.0.1:26650), got {named!r}"
                ) from None
            node = named
    if node is not None:
        check_address(node)
        try:
            man = Manifest.load(testnet) if testnet is not None else None
        except ConfigError:
            man = None  # an explicit address needs no testnet; a damaged one is ignored
        if man is not None and any(n.address == node for n in man.nodes):
            return NodeTarget(node, man.dir)
        return NodeTarget(node)
    if testnet is None:
        raise InputError(
            f"no --node given (nor ${NODE_ENV}) and no testnet found in ./testnet or ${TESTNET_ENV}"
        )
    man = Manifest.load(testnet)
    return NodeTarget(man.nodes[0].address, man.dir)


def check_address(addr: str) -> None:
    """Refuse anything but ``host:port`` with a port in 1..65535."""
    host, sep, port = addr.rpartition(":")
    bad_host = "/" in host or "@" in host or any(c.isspace() for c in host)  # a URL, not a host
    if bad_host or not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise InputError(f"--node must be host:port (e.g. 127.0.0.1:26650), got {addr!r}")
