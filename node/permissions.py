"""Which roles may author which events (the genesis ``permissions`` table and its defaults).

A bizStep is compared by its bare CBV name: ``"urn:epcglobal:cbv:bizstep:shipping"``,
``"https://ref.gs1.org/cbv/BizStep-shipping"`` and ``"shipping"`` are the same step. A step
missing from the genesis table falls back to ``DEFAULT_PERMISSIONS``, then to ``"*"``.
"""

from __future__ import annotations

from collections.abc import Mapping

_ALL_WRITERS = ("enterprise", "association", "regulator", "inspector")

#: Sensible defaults for the policy's product families. Inspections and sampling are open
#: to inspectors and regulators as well as the custodian; a recall is a regulator's act;
#: auditors only read.
DEFAULT_PERMISSIONS: Mapping[str, tuple[str, ...]] = {
    "*": ("enterprise", "association"),
    "inspecting": ("enterprise", "inspector", "regulator"),
    "sampling": ("enterprise", "inspector", "regulator"),
    "sensor_reporting": ("enterprise", "inspector", "regulator"),
    "recalling": ("regulator",),
    "holding": ("enterprise", "regulator"),
    "destroying": ("enterprise", "regulator"),
    "decommissioning": ("enterprise", "regulator"),
    "other": _ALL_WRITERS,
}


def bare_step(biz_step: str) -> str:
    """The CBV short name of a bizStep given as a bare word, URN or GS1 web URI."""
    for prefix in ("urn:epcglobal:cbv:bizstep:", "https://ref.gs1.org/cbv/BizStep-"):
        if biz_step.startswith(prefix):
            return biz_step[len(prefix) :]
    return biz_step


def allowed_roles(biz_step: str, table: Mapping[str, tuple[str, ...]]) -> tuple[str, ...]:
    """Roles allowed to author an event with ``biz_step`` ("" = no bizStep given)."""
    step = bare_step(biz_step) if biz_step else "*"
    for t in (table, DEFAULT_PERMISSIONS):
        if step in t:
            return t[step]
        if biz_step in t:
            return t[biz_step]
    return table.get("*", DEFAULT_PERMISSIONS["*"])
