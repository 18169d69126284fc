"""The farm-to-table demo as data: record drafts for a pig batch's way to the consumer.

Pure: no keys, no network, no clock. The demo runner signs each ``Draft`` as its author
(and, for a handoff, has ``handoff_to`` countersign), submits them in order on a testnet,
then runs ``trace back`` from the contaminated package, ``trace forward`` from the farm
batch, and submits ``recall_draft`` naming the forward set.

Identifiers are GS1 keys under Chinese company prefixes (690-699): the pig batch and the
cut-meat lot are LGTIN classes, carcasses are SGTINs, packages carry GS1 Digital Link URIs
(what their QR codes encode), cases are SSCCs, places are SGLNs.

Flow (member role in brackets):
   1 farm            commissioning   pig batch (lot) at the farm
   2 inspector       inspecting      veterinary quarantine inspection of the batch
   3 farm -> slaughterhouse  shipping (handoff)
   4 slaughterhouse  receiving
   5 slaughterhouse  killing         TransformationEvent batch -> carcasses
   6 slaughterhouse  commissioning   TransformationEvent carcasses -> cut-meat lot
   7 slaughterhouse -> processor     shipping (handoff) of the cut-meat lot
   8 processor       commissioning   TransformationEvent cuts -> QR-coded packages
   9 processor       packing         AggregationEvent packages -> case A, case B
  10 processor -> distributor        shipping (handoff) of both cases
  11 distributor -> retailer         shipping (handoff) of both cases
  12 retailer        unpacking       AggregationEvent DELETE of both cases
  13 retailer        retail_selling  packages 1 and 2 sold to consumers (closed)
  14 inspector       sampling        package 3 sampled at the shop: non_conformant
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from node.epcis import digital_link, gtin14, normalize_code

ROLES = (
    "farm",
    "slaughterhouse",
    "processor",
    "distributor",
    "retailer",
    "inspector",
    "regulator",
)

#: Display names for the demo's genesis (members' ``display_name``).
DISPLAY_NAMES: Mapping[str, str] = {
    "farm": "青山生态养殖场",
    "slaughterhouse": "江南定点屠宰厂",
    "processor": "鲜味肉制品有限公司",
    "distributor": "华东冷链物流有限公司",
    "retailer": "惠民生鲜超市",
    "inspector": "县动物卫生监督所",
    "regulator": "市市场监督管理局",
}

# GS1 company prefixes (7 digits) and item references (6 digits: indicator + 5).
_FARM_CP, _SLAUGHTER_CP, _PLANT_CP = "6901234", "6902345", "6903456"
_PIG_ITEM, _CARCASS_ITEM, _CUTS_ITEM, _PACK_ITEM = "012345", "022222", "033333", "044444"

BATCH = f"urn:epc:class:lgtin:{_FARM_CP}.{_PIG_ITEM}.ZH2026030101"
CARCASSES = tuple(f"urn:epc:id:sgtin:{_SLAUGHTER_CP}.{_CARCASS_ITEM}.{n}" for n in (101, 102, 103))
CUTS = f"urn:epc:class:lgtin:{_SLAUGHTER_CP}.{_CUTS_ITEM}.FG20260302"
PACKAGE_GTIN = gtin14(_PLANT_CP, _PACK_ITEM)
PACKAGES = tuple(
    digital_link(PACKAGE_GTIN, serial=f"QR{n:06d}") for n in range(1, 7)
)  # what each package's QR code carries
CASE_A = f"urn:epc:id:sscc:{_PLANT_CP}.0000000101"
CASE_B = f"urn:epc:id:sscc:{_PLANT_CP}.0000000102"

#: each enterprise's GS1 company prefix (bound to it in the demo's genesis)
_PREFIXES = {
    "farm": _FARM_CP,
    "slaughterhouse": _SLAUGHTER_CP,
    "processor": _PLANT_CP,
    "distributor": "6904567",
    "retailer": "6905678",
}
_PLACES = {r: f"urn:epc:id:sgln:{cp}.00001.0" for r, cp in _PREFIXES.items()}


@dataclass(frozen=True)
class Draft:
    """One record to sign: ``author`` signs; a handoff's ``handoff_to`` countersigns."""

    author: str
    event: Mapping[str, Any]
    category: str = "meat"
    handoff_to: str = ""
    attributes: Mapping[str, Any] = field(default_factory=dict)
    note: str = ""  # what the step shows, for the demo's output
    sealed: Mapping[str, Any] = field(default_factory=dict)  # confidential attributes...
    sealed_to: tuple[str, ...] = ()  # ...readable by the author and these members


@dataclass(frozen=True)
class Scenario:
    drafts: tuple[Draft, ...]
    farm_batch: str  # canonical codes (node.epcis.normalize_code)
    contaminated: str
    packages: tuple[str, ...]
    sold: tuple[str, ...]
    forward_from_batch: frozenset[str]  # what trace forward from the batch must find
    back_to_farm: tuple[str, ...]  # the input chain from the contaminated package to the farm


def gs1_bindings(members: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """``MEMBER=PREFIX``: each enterprise's GS1 company prefix, for the genesis (rule
    gs1-prefix: codes under a prefix are commissioned by its member only). ``members`` as
    for ``farm_to_table``."""
    m = {r: r for r in ROLES} | dict(members or {})
    return tuple(f"{m[r]}={cp}" for r, cp in _PREFIXES.items())


def counterfeit_code() -> str:
    """A package QR code under the meat-product plant's GTIN that the plant never made."""
    return digital_link(PACKAGE_GTIN, serial="QR999999")


def _event(
    etype: str, when: str, step: str, place: str, action: str | None = "OBSERVE", **kw: Any
) -> dict[str, Any]:
    ev: dict[str, Any] = {"type": etype, "eventTime": when, "eventTimeZoneOffset": "+08:00"}
    if action is not None:
        ev["action"] = action
    ev["bizStep"] = step
    ev["readPoint"] = {"id": place}
    ev["bizLocation"] = {"id": place}
    ev.update(kw)
    return ev


def farm_to_table(members: Mapping[str, str] | None = None, day: str = "2026-03") -> Scenario:
    """The demo's drafts. ``members`` maps each of ``ROLES`` to a member id (default: same).

    ``day`` is the year-month prefix of the event times (``YYYY-MM``); times are fixed so
    that the drafts are the same on every run.
    """
    m = {r: r for r in ROLES} | dict(members or {})
    place = {r: _PLACES[r] for r in _PLACES}

    def t(d: int, hh: int) -> str:
        return f"{day}-{d:02d}T{hh:02d}:00:00+08:00"

    pig_qty = [{"epcClass": BATCH, "quantity": 3}]
    cut_qty = [{"epcClass": CUTS, "quantity": 180, "uom": "KGM"}]
    d: list[Draft] = [
        Draft(
            m["farm"],
            _event(
                "ObjectEvent",
                t(1, 8),
                "commissioning",
                place["farm"],
                "ADD",
                disposition="active",
                quantityList=pig_qty,
            ),
            attributes={"品种": "杜洛克", "养殖场": DISPLAY_NAMES["farm"], "耳标数": 3},
            note="farm commissions the pig batch",
        ),
        Draft(
            m["inspector"],
            _event(
                "ObjectEvent",
                t(1, 10),
                "inspecting",
                place["farm"],
                disposition="conformant",
                quantityList=pig_qty,
            ),
            attributes={"检疫证明": "动物检疫合格证明 A-3301-2026-000123"},
            note="veterinary quarantine inspection",
        ),
        Draft(
            m["farm"],
            _event(
                "ObjectEvent",
                t(1, 14),
                "shipping",
                place["farm"],
                disposition="in_transit",
                quantityList=pig_qty,
            ),
            handoff_to=m["slaughterhouse"],
            note="handoff farm -> slaughterhouse (both sign; the price sealed)",
            sealed={"成交价_元每公斤": 26.4},
            sealed_to=(m["slaughterhouse"], m["regulator"]),
        ),
        Draft(
            m["slaughterhouse"],
            _event(
                "ObjectEvent",
                t(1, 17),
                "receiving",
                place["slaughterhouse"],
                disposition="in_progress",
                quantityList=pig_qty,
            ),
            note="slaughterhouse receives the batch",
        ),
        Draft(
            m["slaughterhouse"],
            _event(
                "TransformationEvent",
                t(2, 6),
                "killing",
                place["slaughterhouse"],
                None,
                inputQuantityList=pig_qty,
                outputEPCList=list(CARCASSES),
            ),
            attributes={"肉品品质检验": "合格"},
            note="slaughter: batch -> carcasses",
        ),
        Draft(
            m["slaughterhouse"],
            _event(
                "TransformationEvent",
                t(2, 9),
                "commissioning",
                place["slaughterhouse"],
                None,
                inputEPCList=list(CARCASSES),
                outputQuantityList=cut_qty,
            ),
            note="cutting: carcasses -> cut-meat lot",
        ),
        Draft(
            m["slaughterhouse"],
            _event(
                "ObjectEvent",
                t(2, 12),
                "shipping",
                place["slaughterhouse"],
                disposition="in_transit",
                quantityList=cut_qty,
            ),
            handoff_to=m["processor"],
            note="handoff slaughterhouse -> meat-product plant",
        ),
        Draft(
            m["processor"],
            _event(
                "TransformationEvent",
                t(3, 8),
                "commissioning",
                place["processor"],
                None,
                inputQuantityList=[{"epcClass": CUTS, "quantity": 3, "uom": "KGM"}],
                outputEPCList=list(PACKAGES),
            ),
            category="meat-products",
            attributes={"产品": "冷鲜猪里脊 500g", "二维码": list(PACKAGES)},
            note="plant packs QR-coded meat products",
        ),
        Draft(
            m["processor"],
            _event(
                "AggregationEvent",
                t(3, 10),
                "packing",
                place["processor"],
                "ADD",
                parentID=CASE_A,
                childEPCs=list(PACKAGES[:3]),
            ),
            category="meat-products",
            note="packages 1-3 into case A",
        ),
        Draft(
            m["processor"],
            _event(
                "AggregationEvent",
                t(3, 10),
                "packing",
                place["processor"],
                "ADD",
                parentID=CASE_B,
                childEPCs=list(PACKAGES[3:]),
            ),
            category="meat-products",
            note="packages 4-6 into case B",
        ),
        Draft(
            m["processor"],
            _event(
                "ObjectEvent",
                t(3, 14),
                "shipping",
                place["processor"],
                disposition="in_transit",
                epcList=[CASE_A, CASE_B],
            ),
            category="meat-products",
            handoff_to=m["distributor"],
            note="handoff plant -> cold-chain distributor (cases carry their packages)",
        ),
        Draft(
            m["distributor"],
            _event(
                "ObjectEvent",
                t(4, 6),
                "shipping",
                place["distributor"],
                disposition="in_transit",
                epcList=[CASE_A, CASE_B],
            ),
            category="meat-products",
            handoff_to=m["retailer"],
            note="handoff distributor -> supermarket",
        ),
        *(
            Draft(
                m["retailer"],
                _event(
                    "AggregationEvent",
                    t(4, 9),
                    "unpacking",
                    place["retailer"],
                    "DELETE",
                    parentID=case,
                ),
                category="meat-products",
                note="supermarket unpacks a case",
            )
            for case in (CASE_A, CASE_B)
        ),
        Draft(
            m["retailer"],
            _event(
                "ObjectEvent",
                t(4, 18),
                "retail_selling",
                place["retailer"],
                disposition="retail_sold",
                epcList=list(PACKAGES[:2]),
            ),
            category="meat-products",
            note="two packages sold to consumers",
        ),
        Draft(
            m["inspector"],
            _event(
                "ObjectEvent",
                t(5, 10),
                "sampling",
                place["retailer"],
                disposition="non_conformant",
                epcList=[PACKAGES[2]],
            ),
            category="meat-products",
            attributes={"抽检结果": "检出沙门氏菌 (Salmonella), 不合格"},
            note="market sampling finds contamination in package 3",
        ),
    ]
    canon = normalize_code
    forward = frozenset({canon(BATCH), *map(canon, CARCASSES), canon(CUTS), *map(canon, PACKAGES)})
    return Scenario(
        tuple(d),
        canon(BATCH),
        canon(PACKAGES[2]),
        tuple(map(canon, PACKAGES)),
        tuple(map(canon, PACKAGES[:2])),
        forward,
        (canon(PACKAGES[2]), canon(CUTS), *map(canon, CARCASSES), canon(BATCH)),
    )


def recall_draft(
    codes: Sequence[str],
    classes: Collection[str] = (),
    regulator: str = "regulator",
    when: str = "2026-03-05T16:00:00+08:00",
) -> Draft:
    """A regulator's recall of ``codes`` (the forward trace's scope): a hold, disposition recalled.

    Codes in ``classes`` (lots; ``TraceNode.is_class``) go into the ``quantityList``, the
    others into the ``epcList``, as EPCIS requires.
    """
    ev: dict[str, Any] = {
        "type": "ObjectEvent",
        "eventTime": when,
        "eventTimeZoneOffset": "+08:00",
        "action": "OBSERVE",
        "bizStep": "holding",
        "disposition": "recalled",
        "epcList": [c for c in codes if c not in classes],
    }
    lots = [{"epcClass": c} for c in codes if c in classes]
    if lots:
        ev["quantityList"] = lots
    return Draft(
        regulator,
        ev,
        category="meat-products",
        attributes={"召回通知": "市市场监督管理局 2026 第 7 号: 沙门氏菌污染, 立即下架召回"},
        note="regulator recalls every affected code",
    )
