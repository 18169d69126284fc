"""Which roles may author which events (the genesis ``permissions`` table and its defaults).

A bizStep is compared by its bare CBV name: ``"urn:epcglobal:cbv:bizstep:shipping"``,
``"https://ref.gs1.org/cbv/BizStep-shipping"`` and ``"shipping"`` are the same step.

``consortium init`` and ``testnet up`` write the whole table (the defaults, optionally with
overrides) into the genesis, so what a chain accepts does not depend on the software
version: a step missing from a genesis table falls back to the table's own ``"*"``. Only a
genesis without any table (written before tables were) uses ``DEFAULT_PERMISSIONS``.
"""

from __future__ import annotations

from collections.abc import Mapping

from node import textrules

_ALL_WRITERS = ("enterprise", "association", "regulator", "inspector")

_PRODUCERS = ("enterprise", "association")
_INSPECTORS = ("enterprise", "inspector", "regulator")
_OVERSEEN = ("enterprise", "regulator")

#: Sensible defaults for the policy's product families, keyed by CBV 2.0 bizStep (bare).
#: Production, logistics and sale are the custodian's acts: an enterprise, or an
#: association submitting for its small members. Inspection, sampling and sensor reports are
#: open to inspectors and regulators too (infant-formula batch tests, special-equipment
#: inspections, veterinary checks). Holding, destruction, decommissioning and scrapping may
#: also be a regulator's act (hazardous goods destroyed under supervision, a hold on a
#: suspect batch); a recall (``recalling``, or disposition recalled under ``holding``) is a
#: regulator's, or (``holding``) a producer's of what it made (``node.custody``). Auditors
#: only read. Custody rules (``node.custody``) apply on top: the role says who may write
#: the step at all, custody says on which codes.
DEFAULT_PERMISSIONS: Mapping[str, tuple[str, ...]] = {
    "*": _PRODUCERS,
    # creation and identification
    "commissioning": _PRODUCERS,
    "creating_class_instance": _PRODUCERS,
    "encoding": _PRODUCERS,
    # production and processing (farm, slaughter, plant, pharmacy, installer)
    "killing": _PRODUCERS,
    "assembling": _PRODUCERS,
    "disassembling": _PRODUCERS,
    "packing": _PRODUCERS,
    "unpacking": _PRODUCERS,
    "repackaging": _PRODUCERS,
    "installing": _PRODUCERS,
    "removing": _PRODUCERS,
    "repairing": _PRODUCERS,
    "replacing": _PRODUCERS,
    # logistics
    "shipping": _PRODUCERS,
    "receiving": _PRODUCERS,
    "accepting": _PRODUCERS,
    "arriving": _PRODUCERS,
    "departing": _PRODUCERS,
    "loading": _PRODUCERS,
    "unloading": _PRODUCERS,
    "transporting": _PRODUCERS,
    "staging_outbound": _PRODUCERS,
    "consigning": _PRODUCERS,
    "void_shipping": _PRODUCERS,
    "picking": _PRODUCERS,
    "collecting": _PRODUCERS,
    "storing": _PRODUCERS,
    "stocking": _PRODUCERS,
    "stock_taking": _PRODUCERS,
    "cycle_counting": _PRODUCERS,
    "entering_exiting": _PRODUCERS,
    "reserving": _PRODUCERS,
    # sale and use
    "retail_selling": _PRODUCERS,
    "dispensing": _PRODUCERS,
    # inspection and oversight
    "inspecting": _INSPECTORS,
    "sampling": _INSPECTORS,
    "sensor_reporting": _INSPECTORS,
    "holding": _OVERSEEN,
    "recalling": ("regulator",),
    # end of life
    "destroying": _OVERSEEN,
    "decommissioning": _OVERSEEN,
    "scrapping": _OVERSEEN,
    "other": _ALL_WRITERS,
}


def genesis_permissions(
    overrides: Mapping[str, tuple[str, ...]] | None = None,
) -> list[tuple[str, tuple[str, ...]]]:
    """The defaults, with ``overrides`` (bare bizStep -> roles) laid over them, as a genesis
    ``permissions`` list sorted by step (for ``Genesis.build``: deterministic, so the genesis
    hash is too).

    Writing them into the genesis freezes them for the chain, so a later change of these
    defaults cannot change which records an existing chain accepts.
    """
    table = dict(DEFAULT_PERMISSIONS)
    for step, roles in (overrides or {}).items():
        table[bare_step(step)] = tuple(roles)
    return sorted(table.items())


#: CBV's URN and GS1 web URI prefixes of a bizStep and of a disposition (the bare word is
#: the third spelling).
_STEP_PREFIXES = ("urn:epcglobal:cbv:bizstep:", "https://ref.gs1.org/cbv/BizStep-")
_DISP_PREFIXES = ("urn:epcglobal:cbv:disp:", "https://ref.gs1.org/cbv/Disp-")


def _strip(value: str, prefixes: tuple[str, ...]) -> str:
    for prefix in prefixes:
        if value.startswith(prefix):
            return value[len(prefix) :]
    return value


def bare_step(biz_step: str) -> str:
    """The CBV short name of a bizStep given as a bare word, URN or GS1 web URI."""
    return _strip(biz_step, _STEP_PREFIXES)


def bare_disposition(disposition: str) -> str:
    """The CBV short name of a disposition (bare word, URN or GS1 web URI)."""
    return _strip(disposition, _DISP_PREFIXES)


#: CBV 2.0 dispositions (bare words): the custody rules read several of them.
CBV_DISPOSITIONS = frozenset(
    {
        "active", "available", "completeness_inferred", "completeness_verified",
        "conformant", "container_closed", "container_open", "damaged", "destroyed",
        "dispensed", "disposed", "encoded", "expired", "in_progress", "in_transit",
        "inactive", "mismatch_class", "mismatch_instance", "mismatch_quantity",
        "needs_replacement", "no_pedigree_match", "non_conformant", "non_sellable_other",
        "partially_dispensed", "recalled", "reserved", "retail_sold", "returned",
        "sellable_accessible", "sellable_not_accessible", "stolen", "unavailable",
        "unknown",
    }
)  # fmt: skip
#: CBV 2.0 bizSteps (bare words): those of the default permissions table.
CBV_STEPS = frozenset(DEFAULT_PERMISSIONS) - {"*"}


def cbv_lookalike(value: str, kind: str) -> str:
    """The CBV word (``kind`` "bizstep" or "disp") that ``value`` spells in some other way
    than CBV's three (bare word, URN, GS1 web URI): other case, spaces around, ``http:``,
    a lower-case ``bizstep-``, hidden or full-width characters (``node.textrules``, the
    same on every node); "" when ``value`` is a proper spelling or names no CBV word (a
    custom URI is the extension EPCIS allows)."""
    words = CBV_STEPS if kind == "bizstep" else CBV_DISPOSITIONS
    prefixes = _STEP_PREFIXES if kind == "bizstep" else _DISP_PREFIXES
    if _strip(value, prefixes) in words:
        return ""
    urn, web = prefixes
    loose = textrules.plain(value).strip().lower()  # hidden and full-width characters too
    for prefix in (urn, web.lower(), web.lower().replace("https://", "http://", 1)):
        if loose.startswith(prefix):
            loose = loose[len(prefix) :]
            break
    return loose if loose in words else ""


def allowed_roles(biz_step: str, table: Mapping[str, tuple[str, ...]]) -> tuple[str, ...]:
    """Roles allowed to author an event with ``biz_step`` ("" = no bizStep given)."""
    step = bare_step(biz_step) if biz_step else "*"
    t = table or DEFAULT_PERMISSIONS  # no table: a genesis from before tables were written
    if step in t:
        return t[step]
    if biz_step in t:
        return t[biz_step]
    return t.get("*", DEFAULT_PERMISSIONS["*"])
