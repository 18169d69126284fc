"""EPCIS 2.0 import of every shared GS1 example, identifier normalisation, schema-valid export."""

from __future__ import annotations

import json
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cli.common import read_json_file
from node.epcis import (
    Committed,
    check_digit,
    digital_link,
    document_events,
    export_document,
    import_document,
    import_event,
    normalize_code,
)
from node.errors import InputError
from node.records import make_record
from tests.trace.helpers import GENESIS, event

EPCIS = Path(__file__).resolve().parents[3] / "shared" / "epcis"
EXAMPLES = sorted((EPCIS / "JSON").rglob("*.json*"))

#: Example documents the CLI's reader refuses whole, with the reason a user gets.
DOC_REFUSED = {
    # one event gives "eventID" twice with two different values; a plain JSON reader keeps
    # the last one silently, so which id the event has would depend on the reader
    "AssociationEvent/AssociationEvent-h.jsonld": "repeats the key 'eventID' in one object",
}

#: Every refused example event, with the reason a user gets (what to change).
REFUSED = {
    # a sensor report at a read point that names no product, lot or container
    "WithSensorData/SensorDataExample1b.jsonld#0": "names no trace code",
    "WithSensorData/SensorDataExample3.jsonld#0": "names no trace code",
    # the same lots listed as inputs and as outputs of one transformation
    "WithFullCombinationOfFields/transformation_event_all_possible_fields.jsonld#0": (
        "named in two roles"
    ),
}


@cache
def validator() -> jsonschema.Draft7Validator:
    schema = json.loads((EPCIS / "EPCIS-JSON-Schema.json").read_text(encoding="utf-8"))
    return jsonschema.Draft7Validator(schema)


def load(path: Path) -> Any:
    """A document as ``suyuan epcis import`` reads it (``cli.common.read_json_file``)."""
    return read_json_file(path, "EPCIS document")


def loadable(paths: list[Path]) -> list[Path]:
    return [p for p in paths if str(p.relative_to(EPCIS / "JSON")) not in DOC_REFUSED]


def test_the_examples_are_there():
    assert len(EXAMPLES) == 47


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: str(p.relative_to(EPCIS / "JSON")))
def test_every_example_event_imports_or_is_refused_with_a_reason(path):
    name = str(path.relative_to(EPCIS / "JSON"))
    if name in DOC_REFUSED:
        with pytest.raises(InputError, match=DOC_REFUSED[name]):
            load(path)
        return
    results = import_document(load(path), category="other")
    assert results, "no events found"
    for r in results:
        key = f"{name}#{r.position}"
        if key in REFUSED:
            assert not r.ok
            assert REFUSED[key] in r.reason
        else:
            assert r.event is not None, f"{key}: {r.reason}"
            assert r.codes
            assert r.category == "other"
            rec = make_record(GENESIS, "farm", r.event)  # a valid record draft
            assert rec.codes()


def test_all_event_types_sensor_data_and_error_declarations_import():
    seen: set[str] = set()
    sensor = declared = 0
    for path in loadable(EXAMPLES):
        for r in import_document(load(path)):
            if r.event is not None:
                seen.add(r.event["type"])
                sensor += "sensorElementList" in r.event
                declared += "errorDeclaration" in r.event
    assert seen == {
        "ObjectEvent",
        "AggregationEvent",
        "TransformationEvent",
        "TransactionEvent",
        "AssociationEvent",
    }
    assert sensor >= 15
    assert declared >= 5


def test_document_shapes():
    ev = event(step="shipping", epcList=["urn:epc:id:sgtin:0614141.107346.2017"])
    assert [r.ok for r in import_document(ev)] == [True]
    assert [r.ok for r in import_document([ev, {"type": "Nope"}])] == [True, False]
    query = load(EPCIS / "JSON" / "EPCISQueryDocument.jsonld")
    assert len(document_events(query)[0]) == 2
    with pytest.raises(InputError, match="unknown document type"):
        import_document({"type": "Foo"})
    with pytest.raises(InputError, match="no document 'type'"):  # (QA: it printed None)
        import_document({"epcisBody": {}})
    with pytest.raises(InputError, match="eventList"):
        import_document({"type": "EPCISDocument", "epcisBody": {}})
    with pytest.raises(InputError, match="unknown category"):
        import_document(ev, category="spaceships")


def test_document_context_travels_with_each_event():
    doc = load(EPCIS / "JSON" / "Example_9.6.1-ObjectEvent.jsonld")
    r = import_document(doc, category="meat")[1]
    assert r.event is not None
    assert r.event["@context"] == [{"example": "http://ns.example.com/epcis/"}]
    assert r.category == "meat"


def test_refusal_reasons_are_actionable():
    assert "not a JSON object" in import_event(3).reason
    assert "eventTime" in import_event({"type": "ObjectEvent", "action": "ADD"}).reason
    big = event(step="shipping", epcList=[f"local:x:{i:08d}" for i in range(5000)])
    assert "split" in import_event(big).reason
    assert "control characters" in import_event(event(epcList=["a\x00b"])).reason


# ------------------------------------------------------------------ identifiers


@pytest.mark.parametrize(
    ("given", "canonical"),
    [
        ("urn:epc:id:sgtin:0614141.107346.2017", "https://id.gs1.org/01/10614141073464/21/2017"),
        (
            "urn:epc:class:lgtin:4012345.012345.998877",
            "https://id.gs1.org/01/04012345123456/10/998877",
        ),
        ("urn:epc:idpat:sgtin:4012345.098765.*", "https://id.gs1.org/01/04012345987652"),
        ("urn:epc:id:sscc:0614141.1234567890", "https://id.gs1.org/00/106141412345678908"),
        ("urn:epc:id:sgln:0614141.00777.0", "https://id.gs1.org/414/0614141007776"),
        ("urn:epc:id:sgln:0614141.00777.12", "https://id.gs1.org/414/0614141007776/254/12"),
        ("urn:epc:id:giai:4000001.12345", "https://id.gs1.org/8004/400000112345"),
        (
            "https://example.com/shop/01/9506000134352/21/12345?17=260101",
            "https://id.gs1.org/01/09506000134352/21/12345",
        ),
        (
            "https://id.gs1.org/01/04012345123456/10/998877/21/7",
            "https://id.gs1.org/01/04012345123456/21/7",
        ),
        (
            "http://id.gs1.org/01/04012345123456/10/998877",
            "https://id.gs1.org/01/04012345123456/10/998877",
        ),
        ("local:farm:pig-001", "local:farm:pig-001"),
        ("urn:epc:id:sgtin:bad", "urn:epc:id:sgtin:bad"),
    ],
)
def test_normalize_code(given, canonical):
    assert normalize_code(given) == canonical
    assert normalize_code(canonical) == canonical  # idempotent


def test_digital_link_examples_match_their_urn_twins():
    # GS1's examples state the same lots both ways (Example 9.6.3 with and without DL).
    urn_doc = load(EPCIS / "JSON" / "Example_9.6.3-AggregationEvent.jsonld")
    dl_doc = load(
        EPCIS
        / "JSON"
        / "WithDigitalLinkID"
        / "Example_9.6.3-AggregationEventWithDigitalLink.jsonld"
    )
    urn_codes = set(import_document(urn_doc)[0].codes)
    dl_codes = set(import_document(dl_doc)[0].codes)
    assert {
        "https://id.gs1.org/01/04012345987652",
        "https://id.gs1.org/01/04012345123456/10/998877",
        "https://id.gs1.org/00/106141412345678908",
    } <= urn_codes & dl_codes


def test_digital_link_builder_for_qr_codes():
    assert check_digit("629104150021") == "3"
    assert (
        digital_link("6291041500213", serial="A1") == "https://id.gs1.org/01/06291041500213/21/A1"
    )
    assert digital_link("06291041500213", lot="L7") == "https://id.gs1.org/01/06291041500213/10/L7"
    with pytest.raises(ValueError, match="check digit"):
        digital_link("6291041500214")


# ------------------------------------------------------------------ export


def test_export_of_every_imported_example_validates_against_the_schema():
    records: list[Committed] = []
    for path in loadable(EXAMPLES):
        for r in import_document(load(path)):
            if r.event is not None:
                records.append(
                    Committed(make_record(GENESIS, "farm", r.event), len(records), bytes(32))
                )
    doc = export_document(
        records,
        creation_date="2026-03-05T08:00:00Z",
        document_id="urn:uuid:6e1d1b9a-0000-4000-8000-000000000001",
    )
    errors = list(validator().iter_errors(doc))
    assert not errors, errors[0].message
    assert doc["schemaVersion"] == "2.0"
    assert len(doc["epcisBody"]["eventList"]) == len(records)
    first = doc["epcisBody"]["eventList"][0]
    assert first["suyuan:author"] == "farm"
    assert first["suyuan:logIndex"] == 0
    datetime.fromisoformat(doc["creationDate"])  # the schema's date-time format is not checked


def test_the_validator_is_not_vacuous():
    doc = export_document(
        [make_record(GENESIS, "farm", event(epcList=["x"]))], creation_date="2026-03-05T08:00:00Z"
    )
    assert not list(validator().iter_errors(doc))
    del doc["creationDate"]
    assert list(validator().iter_errors(doc))
    doc = export_document(
        [make_record(GENESIS, "farm", event(epcList=["x"]))], creation_date="2026-03-05T08:00:00Z"
    )
    doc["epcisBody"]["eventList"][0]["action"] = "MAYBE"
    assert list(validator().iter_errors(doc))


_CODE_SAMPLES = [
    "urn:epc:id:sgtin:6901234.012345.1",
    "urn:epc:id:sgtin:6901234.012345.1",  # repeated: kept once
    "URN:EPC:ID:SGTIN:6901234.012345.2",
    "https://id.gs1.org/01/06901234123450/21/7",
    "http://example.com/path/01/6901234123450/21/8",
    "urn:epc:id:sscc:6901234.0000000001",
    "batch-42",
    "  padded  ",
]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from(_CODE_SAMPLES), min_size=1, max_size=6),
    st.sampled_from([None, "parentID", "quantityList", "childEPCs", "outputEPCList"]),
)
def test_event_roles_fast_path_equals_the_general_one(codes, extra) -> None:
    """The epcList-only shortcut must give exactly what the general split gives."""
    from node.epcis import _event_roles_general, event_roles

    ev: dict[str, Any] = {"type": "ObjectEvent", "epcList": list(codes)}
    if extra == "quantityList":
        ev[extra] = [{"epcClass": "urn:epc:class:lgtin:6901234.012345.L1", "quantity": 1}]
    elif extra == "parentID":
        ev[extra] = "urn:epc:id:sscc:6901234.0000000009"
    elif extra is not None:
        ev[extra] = ["urn:epc:id:sgtin:6901234.012345.99"]
    fast, general = event_roles(ev), _event_roles_general(ev)
    assert fast == general
    assert fast.all == general.all


def test_an_exported_handoff_is_refused_and_other_provenance_is_dropped():
    # QA: a genuine export re-imported elsewhere kept "suyuan:handoff" on a record that one
    # member signed alone, so the history showed a handoff that never moved custody
    ev = event(step="shipping", epcList=["urn:epc:id:sgtin:0614141.107346.2017"])
    rid = "ab" * 32
    exported = {**ev, "suyuan:author": "farm", "suyuan:recordId": rid, "suyuan:logIndex": 4}
    r = import_event(exported)
    assert r.event == ev  # what the importer signs carries no other record's provenance
    assert r.exported_as == rid
    handoff = {**exported, "suyuan:handoff": {"from": "farm", "to": "slaughterhouse"}}
    refused = import_event(handoff)
    assert refused.event is None
    assert "both members' signatures" in refused.reason


def test_an_eventid_named_twice_in_one_document_is_refused_the_second_time():
    a = event(step="shipping", epcList=["urn:epc:id:sgtin:0614141.107346.2017"])
    a["eventID"] = "ni:///sha-256;aa?ver=CBV2.0"
    b = {**a, "bizStep": "receiving"}
    results = import_document([a, b, {**a, "eventID": "urn:uuid:other"}])
    assert [r.ok for r in results] == [True, False, True]
    assert results[0].event_id == "ni:///sha-256;aa?ver=CBV2.0"
    assert "repeats event 0's" in results[1].reason


def test_export_drops_provenance_fields_a_member_wrote_into_its_event():
    # QA: "suyuan:handoff" written by the author was exported as if the ledger said it
    ev = event(step="shipping", epcList=["urn:epc:id:sgtin:0614141.107346.2017"])
    forged = {**ev, "suyuan:handoff": {"from": "processor", "to": "retailer"},
              "suyuan:author": "regulator"}  # fmt: skip
    rec = make_record(GENESIS, "farm", forged)
    out = export_document([Committed(rec, 3, bytes(32))], creation_date="2026-03-05T08:00:00Z")
    exported = out["epcisBody"]["eventList"][0]
    assert "suyuan:handoff" not in exported
    assert exported["suyuan:author"] == "farm"


def test_an_event_with_an_unpaired_surrogate_is_refused_at_import_not_a_traceback():
    # QA: `epcis import` (even --dry-run) of a document with "\ud800" in a field crashed
    ev = {**event(epcList=["urn:epc:id:sgtin:6901234.000001.6401"]), "example:x": "\ud800"}
    r = import_event(ev)
    assert r.event is None
    assert "not Unicode" in r.reason
    r = import_event(event(epcList=["urn:x:\udc00"]))
    assert r.event is None
    assert "not Unicode text" in r.reason


def test_export_carries_the_records_public_attributes_and_attachment_digests():
    # QA: `epcis export` left them out without a word (a baijiu record's); sealed values
    # stay sealed, only their names are exported
    attrs = {"alcohol_abv": 52, "origin": "仁怀"}
    att = {"name": "report.pdf", "sha256": "ab" * 32, "media_type": "application/pdf"}
    rec = make_record(
        GENESIS, "farm", event(epcList=["urn:epc:id:sgtin:0614141.107346.1"]),
        attributes=attrs, attachments=[att],
    )  # fmt: skip
    doc = export_document([Committed(rec, 0, bytes(32))], creation_date="2026-03-05T08:00:00Z")
    assert not list(validator().iter_errors(doc))
    out = doc["epcisBody"]["eventList"][0]
    assert out["suyuan:attributes"] == attrs
    assert out["suyuan:attachments"] == [att]
    assert "suyuan:sealed" not in out
    [again] = import_document(doc)  # a re-import drops the ledger's fields
    assert again.event is not None
    assert not any(k.startswith("suyuan:") for k in again.event)
