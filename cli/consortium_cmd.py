"""`suyuan consortium`: write a genesis file."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import re
from pathlib import Path
from typing import Annotated, Any

import nacl.bindings
import typer

from cli.common import (
    console,
    err_console,
    gs1_prefix_option,
    print_json,
    read_json_file,
    safe,
    write_text_atomic,
)
from cli.nodeaddr import find_testnet
from node.errors import ConfigError, InputError
from node.genesis import ROLES, ConsensusParams, Genesis, Member, bind_prefixes
from node.keys import read_public_info
from node.permissions import bare_step, cbv_lookalike, genesis_permissions
from node.textrules import control_char, hidden_char

#: A new chain's id: what every checkpoint origin (``suyuan/<id>/<genesis>``) can carry.
CHAIN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", re.ASCII)

app = typer.Typer(help="Found a consortium: members, validators, genesis.", no_args_is_help=True)

_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")


def parse_member(spec: str) -> Member:
    """NAME:ROLES:KEY where ROLES is comma-separated and KEY a key file or a public key hex."""
    parts = spec.split(":", 2)
    if len(parts) != 3 or not all(parts):
        raise ConfigError(
            f"--member {spec!r}: expected NAME:ROLES:KEY (KEY: a key file, or the public key "
            "in hex)"
        )
    name, roles_s, key = parts
    roles = tuple(r.strip() for r in roles_s.split(","))
    for r in roles:
        if r not in ROLES:
            raise ConfigError(f"--member {name}: unknown role {r!r} (roles: {', '.join(ROLES)})")
    if _HEX64.match(key):
        pub = key
    else:
        file_name, pub = read_public_info(Path(key))
        if file_name != name:
            raise ConfigError(f"--member {name}: key file {key} was created for {file_name!r}")
    raw = bytes.fromhex(pub)
    if not nacl.bindings.crypto_core_ed25519_is_valid_point(raw):
        raise ConfigError(
            f"--member {name}: {pub[:16]}... is not a usable Ed25519 public key (off the "
            "curve or of small order: no signature by it would ever verify)"
        )
    return Member(name, roles, raw)


_LABEL_MAX = 200  # characters of a display name or an organisation code


def apply_labels(members: list[Member], names: list[str], orgs: list[str]) -> list[Member]:
    """``members`` with the ``MEMBER=TEXT`` labels of ``--display-name`` and ``--org-code``
    (each member at most once per option; one line of visible text, at most 200 chars)."""
    by_id = {m.id: m for m in members}
    for option, specs, fld in (
        ("--display-name", names, "display_name"),
        ("--org-code", orgs, "org_code"),
    ):
        seen: set[str] = set()
        for spec in specs:
            mid, sep, text = spec.partition("=")
            if not sep or not text.strip():
                raise ConfigError(f"{option} {spec!r}: expected MEMBER=TEXT")
            if mid not in by_id:
                raise ConfigError(f"{option} {spec!r}: {mid!r} is not a --member")
            if mid in seen:
                raise ConfigError(f"{option}: {mid!r} is given twice")
            # an organisation code is an identifier: nothing invisible (a zero-width space
            # is a space in Unicode 3.2); a name may hold spaces, but not at its ends
            ch = hidden_char(text) if fld == "org_code" else control_char(text)
            if ch or len(text) > _LABEL_MAX or text != text.strip():
                raise ConfigError(
                    f"{option} {mid}: one line of at most {_LABEL_MAX} characters, with no "
                    "control, format or invisible character and no space at either end"
                )
            seen.add(mid)
            m = by_id[mid]
            if fld == "display_name":
                by_id[mid] = dataclasses.replace(m, display_name=text)
            else:
                by_id[mid] = dataclasses.replace(m, org_code=text)
    return [by_id[m.id] for m in members]


def read_permissions(path: Path) -> dict[str, tuple[str, ...]]:
    """A --permissions file: a JSON object mapping bizSteps to lists of roles."""
    doc = read_json_file(path, "--permissions")
    if not isinstance(doc, dict):
        raise ConfigError(f'--permissions {path}: expected {{"bizStep": ["role", ...]}}')
    out: dict[str, tuple[str, ...]] = {}
    for step, roles in doc.items():
        if not isinstance(roles, list) or any(r not in ROLES for r in roles):
            raise ConfigError(
                f"--permissions {path}: {step!r} must list roles from {', '.join(ROLES)}"
            )
        if len(set(roles)) != len(roles):
            raise ConfigError(f"--permissions {path}: {step!r} lists a role twice")
        word = cbv_lookalike(step, "bizstep")
        if word:  # records spelled so are refused: the row could never apply
            raise ConfigError(f"--permissions {path}: {step!r} is not how CBV spells {word!r}")
        bare = bare_step(step)
        if bare in out:
            raise ConfigError(f"--permissions {path}: {step!r} names {bare!r} a second time")
        out[bare] = tuple(roles)
    return out


_MAX_TIMEOUT_MS = 600_000
_MIN_RECORD_BYTES = 1024  # a commissioning of one code with its signature fields is ~300 B


@app.command("init")
def init(
    chain_id: Annotated[str, typer.Option("--chain-id", help="Name of the chain.")],
    member: Annotated[
        list[str],
        typer.Option(
            "--member",
            help="NAME:ROLES:KEY (repeat); KEY: the member's key file, or its public key in "
            "hex (`suyuan keys show`), so no one hands over a key file. ROLES: " + ",".join(ROLES),
        ),
    ],
    validator: Annotated[
        list[str], typer.Option("--validator", help="Member that runs a validator (repeat).")
    ],
    out: Annotated[Path, typer.Option("--out", help="Genesis file to write.")] = Path(
        "genesis.json"
    ),
    timeout_propose_ms: Annotated[
        int, typer.Option(help="Base propose timeout in milliseconds.")
    ] = 1000,
    max_record_bytes: Annotated[
        int,
        typer.Option(
            help="Largest record payload in bytes (the signed record JSON, before base64; "
            "signatures not counted)."
        ),
    ] = 65536,
    permissions: Annotated[
        Path | None,
        typer.Option(
            "--permissions",
            help='JSON object {"bizStep": ["role", ...]} laid over the default table.',
        ),
    ] = None,
    display_name: Annotated[
        list[str] | None,
        typer.Option(
            "--display-name", help="MEMBER=NAME (repeat): the organisation's name, e.g. 某某乳业."
        ),
    ] = None,
    org_code: Annotated[
        list[str] | None,
        typer.Option(
            "--org-code", help="MEMBER=CODE (repeat): e.g. its unified social credit code."
        ),
    ] = None,
    gs1_prefix: Annotated[
        list[str] | None,
        gs1_prefix_option(
            "Repeatable: a GS1 company prefix (4-12 digits) bound to the "
            "member; codes under it are commissioned by the members it is bound to only "
            "(rule gs1-prefix)."
        ),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Write genesis.json for a new consortium and print its chain identity.

    The file is written as its canonical JSON (one line), so the identity printed is also
    the file's SHA-256 (`sha256sum genesis.json`). The genesis holds the whole
    role-permission table (roles allowed per bizStep): the defaults of node/permissions.py,
    with the steps of --permissions FILE replaced.
    """
    if out.exists() and not force:
        raise ConfigError(f"{out}: already exists (use --force to overwrite)")
    if not CHAIN_ID.fullmatch(chain_id):
        raise ConfigError(
            f"--chain-id {chain_id!r}: use 1-64 ASCII letters, digits, '.', '_' or '-', "
            "starting with a letter or digit (it names the chain in every checkpoint and "
            "signed note, and can never change)"
        )
    members = apply_labels([parse_member(m) for m in member], display_name or [], org_code or [])
    members = bind_prefixes(members, gs1_prefix or [])
    # (QA: 999999999999 ms and 10 bytes were accepted, and a genesis never changes)
    if not 1 <= timeout_propose_ms <= _MAX_TIMEOUT_MS:
        raise ConfigError(
            f"--timeout-propose-ms {timeout_propose_ms}: between 1 and {_MAX_TIMEOUT_MS} "
            "(10 minutes)"
        )
    if not _MIN_RECORD_BYTES <= max_record_bytes <= ConsensusParams.max_block_bytes:
        raise ConfigError(
            f"--max-record-bytes {max_record_bytes}: between {_MIN_RECORD_BYTES} and "
            f"{ConsensusParams.max_block_bytes} (a block's size)"
        )
    params = ConsensusParams(
        timeout_propose_ms=timeout_propose_ms, max_record_bytes=max_record_bytes
    )
    table = genesis_permissions(read_permissions(permissions) if permissions else None)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    genesis = Genesis.build(chain_id, members, validator, params, table, genesis_time=now)
    write_text_atomic(out, genesis.to_json())
    waste = _validator_note(len(validator))
    if waste:  # (QA: 2 validators were taken without a word; one down stops that chain)
        err_console.print(f"warning: {waste}", markup=False)
    if as_json:
        print_json({"chain_id": chain_id, "genesis_hash": genesis.hash.hex(), "file": str(out)})
    else:
        nv = len(validator)
        console.print(
            f"chain {chain_id}: {len(members)} members, {nv} validator{'' if nv == 1 else 's'}"
        )
        console.print(f"chain identity (SHA-256 of {out}): {genesis.hash.hex()}")


def member_rows(g: Genesis) -> list[dict[str, Any]]:
    """Each member as shown by ``consortium show``, in genesis order."""
    return [
        {
            "id": m.id,
            "roles": list(m.roles),
            "validator": m.id in g.validators,
            "display_name": m.display_name,
            "org_code": m.org_code,
            "gs1_prefixes": list(m.gs1_prefixes),
            "public_key": m.public_key.hex(),
        }
        for m in g.members
    ]


def _validator_note(n: int) -> str:
    """What ``n`` validators tolerate, when it is not what their number suggests ("" for
    3f+1 from 4 on): 1, 2 or 3 tolerate none, and 3f+2 or 3f+3 tolerate no more than 3f+1
    do (QA-Q: one validator was taken without a word, where two were warned of)."""
    f = (n - 1) // 3
    if n == 1:
        return (
            "1 validator tolerates no faulty one: a single-node consortium, for trials; "
            "4 would tolerate 1"
        )
    if n == 3 * f + 1:
        return ""
    more = f"{3 * (f + 1) + 1} would tolerate {f + 1}"
    if f == 0:
        return f"{n} validators tolerate no faulty one: one down stops the chain; {more}"
    stop = f"{f + 1} down stop the chain"
    return f"{n} validators tolerate {f} faulty, as {3 * f + 1} do ({stop}); {more}"


@app.command("show")
def show(
    genesis: Annotated[
        Path | None,
        typer.Option(
            "--genesis",
            help="Genesis file (default: ./genesis.json, else the local testnet's).",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Who is in a consortium: its chain identity, members, roles, validators, names."""
    path = genesis
    if path is None:
        here, testnet = Path("genesis.json"), find_testnet()
        path = here if here.exists() else (testnet / "genesis.json" if testnet else None)
    if path is None:
        raise InputError("--genesis is required: no ./genesis.json and no local testnet")
    g = Genesis.load(path)
    rows = member_rows(g)
    if as_json:
        print_json(
            {
                "chain_id": g.chain_id,
                "genesis_hash": g.hash.hex(),
                "genesis_time": g.genesis_time,
                "members": rows,
                "validators": list(g.validators),
                "consensus": g.consensus.to_dict(),
            }
        )
        return
    nv = len(g.validators)
    console.print(
        f"chain {g.chain_id}: {len(rows)} members, {nv} validator{'' if nv == 1 else 's'} "
        f"(tolerates {(nv - 1) // 3} faulty), founded {g.genesis_time or '-'}"
    )
    same = hashlib.sha256(path.read_bytes()).digest() == g.hash  # (QA: a reformatted file)
    of = path if same else f"the canonical form of {path}, which is formatted otherwise"
    console.print(f"chain identity (SHA-256 of {of}): {g.hash.hex()}")
    for r in rows:
        org = f"[{r['org_code']}]" if r["org_code"] else ""
        gcp = f"GS1 {','.join(r['gs1_prefixes'])}" if r["gs1_prefixes"] else ""
        label = " ".join(x for x in (r["display_name"], org, gcp) if x)
        console.print(
            f"  {r['id']:<16} {','.join(r['roles']):<24} "
            f"{'validator' if r['validator'] else '-':<10} {safe(label) or '-'}  "
            f"key {r['public_key'][:16]}..."
        )
