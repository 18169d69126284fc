"""The consortium's genesis: members, validators, consensus parameters, permissions.

``genesis.json`` uses the field names of the ``Genesis`` message in proto/types.proto
(snake_case). The chain's identity is ``genesis_hash``: SHA-256 over the canonical JSON form
of the parsed document (keys sorted, no insignificant whitespace, UTF-8), so reformatting
the file does not change the chain while any change of content does. ``to_json`` writes
exactly those canonical bytes (one line, no trailing newline), so for a file written by
``suyuan consortium init`` the file's own SHA-256 (``sha256sum genesis.json``) is the
chain identity too.

Validation (``Genesis.from_dict``) refuses: unknown fields, duplicate member ids or public
keys, unknown roles, validators that are not members, zero validators, bad key encodings.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from node.errors import ConfigError
from node.inputfile import read_input
from node.keys import validate_name
from node.payload_json import RepeatedKeyError, unique_keys

FORMAT = "suyuan-genesis/1"
ROLES = ("enterprise", "association", "regulator", "inspector", "auditor")


@dataclass(frozen=True)
class Member:
    id: str
    roles: tuple[str, ...]
    public_key: bytes
    display_name: str = ""
    org_code: str = ""
    x25519_key: bytes = b""
    #: GS1 company prefixes bound to the member: codes under one are commissioned only by
    #: the members it is bound to (``Genesis.prefix_owners``; rule gs1-prefix)
    gs1_prefixes: tuple[str, ...] = ()

    def has_role(self, *roles: str) -> bool:
        """True if the member holds any of ``roles`` (a loop: this is on every record's
        path)."""
        mine = self.roles
        for r in roles:  # noqa: SIM110 -- any(genexpr) is ~3x slower on this hot path
            if r in mine:
                return True
        return False

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "id": self.id,
            "roles": list(self.roles),
            "public_key": self.public_key.hex(),
        }
        if self.display_name:
            d["display_name"] = self.display_name
        if self.org_code:
            d["org_code"] = self.org_code
        if self.x25519_key:
            d["x25519_key"] = self.x25519_key.hex()
        if self.gs1_prefixes:
            d["gs1_prefixes"] = list(self.gs1_prefixes)
        return d


@dataclass(frozen=True)
class ConsensusParams:
    """Timeouts grow linearly: step timeout at round r = base + delta * r."""

    timeout_propose_ms: int = 1000
    timeout_prevote_ms: int = 500
    timeout_precommit_ms: int = 500
    timeout_delta_ms: int = 500
    max_block_records: int = 4000
    max_block_bytes: int = 8 * 1024 * 1024
    max_record_bytes: int = 64 * 1024
    create_empty_blocks_interval_ms: int = 0

    def to_dict(self) -> dict[str, int]:
        return {k: int(v) for k, v in self.__dict__.items()}


@dataclass(frozen=True)
class Genesis:
    chain_id: str
    members: tuple[Member, ...]
    validators: tuple[str, ...]
    consensus: ConsensusParams = field(default_factory=ConsensusParams)
    permissions: tuple[tuple[str, tuple[str, ...]], ...] = ()
    genesis_time: str = ""
    hash: bytes = b""  # filled by from_dict/build: SHA-256 of the canonical JSON form

    # ------------------------------------------------------------------ lookups

    def member(self, member_id: str) -> Member | None:
        return self._by_id().get(member_id)

    def public_key(self, member_id: str) -> bytes | None:
        """``member_id``'s public key; None if it is no member."""
        m = self._by_id().get(member_id)
        return m.public_key if m is not None else None

    def _by_id(self) -> dict[str, Member]:
        cache: dict[str, Member] | None = self.__dict__.get("_by_id_cache")
        if cache is None:
            cache = {m.id: m for m in self.members}
            object.__setattr__(self, "_by_id_cache", cache)
        return cache

    @property
    def binds_prefixes(self) -> bool:
        """Whether any member has ``gs1_prefixes`` (else rule gs1-prefix has nothing to do)."""
        return bool(self._prefix_table())

    def prefix_owners(self, digits: str) -> tuple[str, ...]:
        """The bound GS1 company prefix that ``digits`` (a GS1 key's digits from where its
        company prefix starts: ``node.epcis.company_digits``) starts with, the longest if
        several, then the members it is bound to; () if none is."""
        table = self._prefix_table()
        for n in range(min(len(digits), PREFIX_MAX), PREFIX_MIN - 1, -1):
            owners = table.get(digits[:n])
            if owners is not None:
                return (digits[:n], *owners)
        return ()

    def _prefix_table(self) -> dict[str, tuple[str, ...]]:
        cache: dict[str, tuple[str, ...]] | None = self.__dict__.get("_prefix_cache")
        if cache is None:
            cache = _owners_by_prefix(self.members)
            object.__setattr__(self, "_prefix_cache", cache)
        return cache

    def validator_keys(self) -> list[tuple[str, bytes]]:
        """(member id, public key) of every validator, in genesis order."""
        return [(v, self._by_id()[v].public_key) for v in self.validators]

    def permission_table(self) -> dict[str, tuple[str, ...]]:
        return dict(self.permissions)

    @functools.cached_property
    def permission_steps(self) -> frozenset[str]:
        """The bizSteps the permissions table names (a consortium's own bare steps among
        them, which ``check_new_record`` accepts beside CBV's)."""
        return frozenset(step for step, _ in self.permissions)

    def roles_for_step(self, biz_step: str) -> tuple[str, ...]:
        """``permissions.allowed_roles`` under this genesis's table, memoized per bizStep
        (every record's verification asks)."""
        cache: dict[str, tuple[str, ...]] | None = self.__dict__.get("_roles_cache")
        if cache is None:
            cache = {}
            object.__setattr__(self, "_roles_cache", cache)
        roles = cache.get(biz_step)
        if roles is None:
            from node.permissions import allowed_roles

            roles = allowed_roles(biz_step, self.permission_table())
            if len(cache) < 4096:  # bizSteps are a small vocabulary; bound it anyway
                cache[biz_step] = roles
        return roles

    @functools.cached_property
    def hash_hex(self) -> str:
        """``hash`` in hex, as records name their genesis (every verification compares)."""
        return self.hash.hex()

    # ------------------------------------------------------------------ (de)serialization

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "format": FORMAT,
            "chain_id": self.chain_id,
            "members": [m.to_dict() for m in self.members],
            "validators": list(self.validators),
            "consensus": self.consensus.to_dict(),
        }
        if self.genesis_time:
            d["genesis_time"] = self.genesis_time
        if self.permissions:
            d["permissions"] = [{"biz_step": s, "roles": list(r)} for s, r in self.permissions]
        return d

    def canonical_bytes(self) -> bytes:
        """The canonical JSON form (``canonical_json``): for a genesis made by ``build`` or
        read from a canonical file, ``SHA-256(canonical_bytes()) == hash``."""
        return canonical_json(self.to_dict())

    def to_json(self) -> str:
        """The file form: exactly ``canonical_bytes()``, so the file's SHA-256 is the hash."""
        return self.canonical_bytes().decode("utf-8")

    @classmethod
    def build(
        cls,
        chain_id: str,
        members: list[Member],
        validators: list[str],
        consensus: ConsensusParams | None = None,
        permissions: list[tuple[str, tuple[str, ...]]] | None = None,
        genesis_time: str = "",
    ) -> Genesis:
        """Construct and validate through the same path as a file, so hashes agree."""
        draft = cls(
            chain_id,
            tuple(members),
            tuple(validators),
            consensus or ConsensusParams(),
            tuple(permissions or ()),
            genesis_time,
        )
        return cls.from_dict(draft.to_dict())

    @classmethod
    def from_dict(cls, doc: Any) -> Genesis:
        if not isinstance(doc, dict):
            raise ConfigError("genesis: expected a JSON object")
        _no_unknown(
            doc,
            {
                "format",
                "chain_id",
                "genesis_time",
                "members",
                "validators",
                "consensus",
                "permissions",
            },
            "genesis",
        )
        if doc.get("format") != FORMAT:
            raise ConfigError(f"genesis: 'format' must be {FORMAT!r}")
        chain_id = doc.get("chain_id")
        if not isinstance(chain_id, str) or not 0 < len(chain_id) <= 64:
            raise ConfigError("genesis: 'chain_id' must be a string of 1-64 characters")
        members_doc = doc.get("members")
        if not isinstance(members_doc, list) or not members_doc:
            raise ConfigError("genesis: 'members' must be a non-empty list")
        members = [_member(m, i) for i, m in enumerate(members_doc)]
        ids = [m.id for m in members]
        dup = {i for i in ids if ids.count(i) > 1}
        if dup:
            raise ConfigError(f"genesis: duplicate member id(s): {', '.join(sorted(dup))}")
        check_prefixes_apart(members)
        keys = [m.public_key for m in members]
        if len(set(keys)) != len(keys):  # (QA-W: which two was not said)
            shared = next(k for k in keys if keys.count(k) > 1)
            both = " and ".join(repr(m.id) for m in members if m.public_key == shared)
            raise ConfigError(f"genesis: members {both} share one public key (one key each)")
        validators = doc.get("validators")
        if not isinstance(validators, list) or not validators:
            raise ConfigError("genesis: at least one validator is required")
        if len(set(validators)) != len(validators):
            raise ConfigError("genesis: a validator is listed twice")
        for v in validators:
            if v not in ids:
                raise ConfigError(f"genesis: validator {v!r} is not a member")
        consensus = _consensus(doc.get("consensus", {}))
        perms = _permissions(doc.get("permissions", []))
        gtime = doc.get("genesis_time", "")
        if not isinstance(gtime, str):
            raise ConfigError("genesis: 'genesis_time' must be a string")
        try:
            digest = hashlib.sha256(canonical_json(doc)).digest()
        except UnicodeEncodeError as e:  # a lone surrogate (\ud800) parsed from an escape
            raise ConfigError(
                f"genesis: holds text that is not valid Unicode ({e.object[e.start : e.end]!r}, "
                "a lone surrogate)"
            ) from e
        return cls(chain_id, tuple(members), tuple(validators), consensus, perms, gtime, digest)

    @classmethod
    def load(cls, path: Path) -> Genesis:
        text = read_input(path, "genesis", error=ConfigError)
        try:
            doc = json.loads(text, object_pairs_hook=unique_keys)
        except RepeatedKeyError as e:  # the last value would win: a file that is not the genesis
            raise ConfigError(
                f"{path}: key {e.key!r} is given twice (its identity is of one value per key)"
            ) from e
        except (ValueError, UnicodeDecodeError, RecursionError) as e:
            raise ConfigError(f"{path}: not valid JSON ({e})") from e
        try:
            return cls.from_dict(doc)
        except ConfigError as e:
            raise ConfigError(f"{path}: {e}") from e


def canonical_json(doc: Any) -> bytes:
    """Sorted keys, compact separators, UTF-8. Floats are refused upstream (ints only)."""
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _no_unknown(doc: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = set(doc) - allowed
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")


def _member(doc: Any, i: int) -> Member:
    where = f"genesis: members[{i}]"
    if not isinstance(doc, dict):
        raise ConfigError(f"{where}: expected an object")
    _no_unknown(
        doc,
        {"id", "roles", "public_key", "display_name", "org_code", "x25519_key", "gs1_prefixes"},
        where,
    )
    mid = doc.get("id")
    if not isinstance(mid, str):
        raise ConfigError(f"{where}: 'id' is missing")
    try:
        validate_name(mid)
    except Exception as e:
        raise ConfigError(f"{where}: {e}") from e
    roles = doc.get("roles")
    if not isinstance(roles, list) or not roles:
        raise ConfigError(f"{where} ({mid}): 'roles' must be a non-empty list")
    for r in roles:
        if r not in ROLES:
            raise ConfigError(f"{where} ({mid}): unknown role {r!r} (roles: {', '.join(ROLES)})")
    if len(set(roles)) != len(roles):
        raise ConfigError(f"{where} ({mid}): a role is listed twice")
    pub = _hex(doc.get("public_key"), 32, f"{where} ({mid}): 'public_key'")
    x = doc.get("x25519_key", "")
    xkey = _hex(x, 32, f"{where} ({mid}): 'x25519_key'") if x else b""
    name = doc.get("display_name", "")
    org = doc.get("org_code", "")
    if not isinstance(name, str) or not isinstance(org, str):
        raise ConfigError(f"{where} ({mid}): 'display_name' and 'org_code' must be strings")
    prefixes = doc.get("gs1_prefixes", [])
    if "gs1_prefixes" in doc and not (isinstance(prefixes, list) and prefixes):
        raise ConfigError(f"{where} ({mid}): 'gs1_prefixes' must be a non-empty list")
    for p in prefixes:
        problem = prefix_problem(p)
        if problem:
            raise ConfigError(f"{where} ({mid}): gs1_prefixes: {problem}")
    if len(set(prefixes)) != len(prefixes):
        raise ConfigError(f"{where} ({mid}): a GS1 company prefix is listed twice")
    return Member(mid, tuple(roles), pub, name, org, xkey, tuple(prefixes))


def _owners_by_prefix(members: Sequence[Member]) -> dict[str, tuple[str, ...]]:
    """Each bound GS1 company prefix and the members it is bound to, in genesis order."""
    owners: dict[str, tuple[str, ...]] = {}
    for m in members:
        for p in m.gs1_prefixes:
            owners[p] = (*owners.get(p, ()), m.id)
    return owners


def check_prefixes_apart(members: Sequence[Member]) -> None:
    """GS1 company prefixes do not nest: a prefix bound to some members inside another
    bound to others would take codes from them (QA: rival's 69012345 inside brand's 6901234
    made brand's own codes under it refused)."""
    owners = _owners_by_prefix(members)
    for p, p_by in owners.items():
        for q, q_by in owners.items():
            if p != q and p.startswith(q) and set(p_by) != set(q_by):
                raise ConfigError(
                    f"genesis: gs1_prefixes: {p} ({', '.join(sorted(p_by))}) lies within "
                    f"{q} ({', '.join(sorted(q_by))}): GS1 company prefixes do not nest"
                )


PREFIX_MIN, PREFIX_MAX = 4, 12  # digits of a GS1 company prefix (GS1 General Specifications)


#: GS1 prefixes (a company prefix's first digits) that are no company's (GS1 General
#: Specifications, the GS1 prefix table): restricted circulation numbers, which any company
#: may use inside its own walls or a country's (variable-measure items, in-store codes);
#: GTIN-8 numbers (00000); coupons and refund receipts
_RESTRICTED = tuple(f"{n:03d}" for n in (*range(20, 30), *range(40, 50), *range(200, 300)))
_NOT_A_COMPANY = (
    ("00000", "the GTIN-8 number space (00000), not a company prefix"),
    (
        tuple(f"{n:03d}" for n in (*range(50, 60), *range(980, 985), *range(990, 1000))),
        "a GS1 coupon or refund receipt range (050-059, 980-984, 99), not a company prefix",
    ),
)


def prefix_problem(prefix: Any) -> str:
    """What is wrong with ``prefix`` as a GS1 company prefix, or ""."""
    if (
        not isinstance(prefix, str)
        or not PREFIX_MIN <= len(prefix) <= PREFIX_MAX
        or not all("0" <= ch <= "9" for ch in prefix)
    ):
        return f"{prefix!r} is not a GS1 company prefix ({PREFIX_MIN}-{PREFIX_MAX} ASCII digits)"
    if not prefix.strip("0"):
        return f"{prefix!r} is all zeros, not a GS1 company prefix (it would take in every GTIN-8)"
    if prefix.startswith(_RESTRICTED):
        return (
            f"{prefix!r} is in a GS1 restricted circulation range (GS1 prefixes 020-029, "
            "040-049, 200-299: numbers any company may use internally), not a company prefix"
        )
    for starts, what in _NOT_A_COMPANY:
        if prefix.startswith(starts):
            return f"{prefix!r} is in {what}"
    return ""


def bind_prefixes(members: Sequence[Member], specs: Sequence[str]) -> list[Member]:
    """``members`` with the GS1 company prefixes of ``MEMBER=PREFIX`` specs bound (a member
    may have several, and a prefix several members: a brand owner and its contract
    manufacturer). Nesting across members is checked by ``Genesis.build``.

    Raises:
        ConfigError: a spec is malformed, names no member, has a bad prefix, or repeats.
    """
    by_id = {m.id: m for m in members}
    for spec in specs:
        mid, sep, prefix = spec.partition("=")
        if not sep:
            raise ConfigError(f"--gs1-prefix {spec!r}: expected MEMBER=PREFIX")
        if mid not in by_id:
            raise ConfigError(
                f"--gs1-prefix {spec!r}: {mid!r} is not a member (members: {', '.join(by_id)})"
            )
        problem = prefix_problem(prefix)
        if problem:
            raise ConfigError(f"--gs1-prefix {spec!r}: {problem}")
        m = by_id[mid]
        if prefix in m.gs1_prefixes:
            raise ConfigError(f"--gs1-prefix {spec!r}: given twice")
        by_id[mid] = replace(m, gs1_prefixes=(*m.gs1_prefixes, prefix))
    return [by_id[m.id] for m in members]


def _hex(value: Any, size: int, what: str) -> bytes:
    if not isinstance(value, str):
        raise ConfigError(f"{what} is missing")
    try:
        raw = bytes.fromhex(value)
    except ValueError as e:
        raise ConfigError(f"{what} is not hex") from e
    if len(raw) != size:
        raise ConfigError(f"{what} must be {size} bytes ({2 * size} hex digits)")
    return raw


def _consensus(doc: Any) -> ConsensusParams:
    if not isinstance(doc, dict):
        raise ConfigError("genesis: 'consensus' must be an object")
    defaults = ConsensusParams().to_dict()
    _no_unknown(doc, set(defaults), "genesis: consensus")
    values: dict[str, int] = {}
    for k, default in defaults.items():
        v = doc.get(k, default)
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            raise ConfigError(f"genesis: consensus.{k} must be a non-negative integer")
        values[k] = v
    for k in ("max_block_records", "max_block_bytes", "max_record_bytes", "timeout_propose_ms"):
        if values[k] == 0:
            raise ConfigError(f"genesis: consensus.{k} must be positive")
    return ConsensusParams(**values)


def _permissions(doc: Any) -> tuple[tuple[str, tuple[str, ...]], ...]:
    if not isinstance(doc, list):
        raise ConfigError("genesis: 'permissions' must be a list")
    out: list[tuple[str, tuple[str, ...]]] = []
    seen: set[str] = set()
    for i, p in enumerate(doc):
        where = f"genesis: permissions[{i}]"
        if not isinstance(p, dict):
            raise ConfigError(f"{where}: expected an object")
        _no_unknown(p, {"biz_step", "roles"}, where)
        step, roles = p.get("biz_step"), p.get("roles")
        if not isinstance(step, str) or not step:
            raise ConfigError(f"{where}: 'biz_step' is missing")
        if step in seen:
            raise ConfigError(f"{where}: biz_step {step!r} listed twice")
        seen.add(step)
        if not isinstance(roles, list) or any(r not in ROLES for r in roles):
            raise ConfigError(f"{where}: 'roles' must list roles from {', '.join(ROLES)}")
        out.append((step, tuple(roles)))
    return tuple(out)
