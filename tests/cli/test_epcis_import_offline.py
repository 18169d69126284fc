"""`suyuan epcis import` against a node that cannot be reached: one line, exit 5."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

from node.keys import write_key_file
from tests.cli.helpers import suyuan
from tests.fixtures import genesis, key, object_event


def _three_events(tmp_path: Path) -> None:
    """genesis g.json, farm.key and doc.jsonld (three commissioning events) in tmp_path."""
    (tmp_path / "g.json").write_text(genesis().to_json())
    write_key_file(tmp_path / "farm.key", key("farm"), None)
    events = [object_event([f"urn:x:{i}"]) for i in range(3)]
    doc = {"type": "EPCISDocument", "epcisBody": {"eventList": events}}
    (tmp_path / "doc.jsonld").write_text(json.dumps(doc))


def test_unreachable_node_stops_at_the_first_event(tmp_path: Path) -> None:
    _three_events(tmp_path)
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = suyuan(
        "epcis", "import", "doc.jsonld", "--key", "farm.key", "--genesis", "g.json",
        "--node", f"127.0.0.1:{port}", cwd=tmp_path,
    )  # fmt: skip
    assert r.returncode == 5, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("error: ")
    assert "stopped at event 0: 0 event(s) imported before" in lines[0]
    assert ": refused" not in r.stdout
    # nothing was sent: the node was unreachable when the import looked the first event's
    # eventID up (derived for it, as `record sign` would), so no event is in doubt
    assert "0 of 3 events imported" in r.stdout
    assert "unknown" not in r.stdout
    assert "may have been committed" not in lines[0]


def test_dry_run_says_nothing_was_imported(tmp_path: Path) -> None:
    _three_events(tmp_path)
    args = ("epcis", "import", "doc.jsonld", "--key", "farm.key", "--genesis", "g.json")
    r = suyuan(*args, "--dry-run", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "3 of 3 events pass the checks made offline (dry run: nothing was submitted; the " in (
        r.stdout
    )
    assert "event   0: ok (dry run) 1 code(s)" in r.stdout  # (not a record id of this signing)
    rep = json.loads(suyuan(*args, "--dry-run", "--json", cwd=tmp_path).stdout)
    assert (rep["imported"], rep["would_import"], rep["refused"]) == (0, 3, 0)


def test_an_event_committed_late_by_an_interrupted_run_is_skipped_not_refused() -> None:
    # QA: a re-run looked while the first run's record was still pending elsewhere, then
    # was refused (commission-once) once it committed: "refused", exit 1, for an event
    # that is on the chain
    from cli.epcis_cmd import _OnChain
    from node.epcis import ImportResult, normalize_code

    code = normalize_code("urn:epc:id:sgtin:0614141.107346.2017")
    when = "2026-03-01T08:00:00+08:00"
    ev = {"type": "ObjectEvent", "eventTime": when, "action": "ADD",
          "bizStep": "commissioning", "eventID": "urn:uuid:1", "epcList": [code]}  # fmt: skip
    r = ImportResult(0, ev, "other", codes=(code,), event_id="urn:uuid:1")
    client = _OnChainClient(ev, "slaughterhouse")
    on_chain = _OnChain(client, "farm")  # type: ignore[arg-type]
    assert on_chain.find(r) is None  # (pending elsewhere: not yet on the chain)
    client.committed = True
    assert on_chain.find(r) is None  # (the answer first read is kept for the run)
    late = on_chain.find_again(r)
    assert late is not None
    assert (late["status"], late["log_index"], late["author"]) == ("skipped", 7, "slaughterhouse")
    assert late["reason"].endswith(f"record {bytes(32).hex()} by slaughterhouse")  # (QA: who?)


class _OnChainClient:
    """A node holding one committed record of ``event`` (log index 7), once ``committed``."""

    def __init__(self, event: dict[str, Any], author: str) -> None:
        from node.epcis import normalize_code
        from node.records import make_record
        from proto import types_pb2
        from tests.fixtures import genesis

        self.committed = False
        self.payload = make_record(genesis(), author, event).to_payload()
        self.info = types_pb2.RecordInfo(
            record_id=bytes(32), log_index=7, height=3, event_type=event["type"],
            event_time=event["eventTime"], biz_step=event["bizStep"],
            codes=[normalize_code(c) for c in event["epcList"]],
            event_id=event["eventID"], author=author,
        )  # fmt: skip

    def trace_history(self, code: str, limit: int, page_token: str):
        from proto import services_pb2

        records = [self.info] if self.committed else []
        return services_pb2.TraceResponse(code=code, records=records)

    def get_record(self, record_id: bytes):
        from proto import services_pb2, types_pb2

        assert record_id == self.info.record_id
        env = types_pb2.Envelope(payload=self.payload)
        return services_pb2.RecordResponse(envelope=env, info=self.info)


def test_an_eventid_on_the_chain_with_other_content_is_refused_not_skipped() -> None:
    # QA-R: a sensor reading re-sent with another value (GS1's SensorDataExample13 and 17
    # share an eventID), or the same event with a disposition added, was reported "skipped,
    # already on this chain", exit 0, and never recorded
    from cli.epcis_cmd import _OnChain
    from node.epcis import ImportResult, normalize_code

    code = normalize_code("urn:epc:id:sgtin:0614141.107346.2018")
    ev = {"type": "ObjectEvent", "eventTime": "2026-03-01T08:00:00+08:00", "action": "OBSERVE",
          "bizStep": "sensor_reporting", "eventID": "urn:uuid:2", "epcList": [code],
          "sensorElementList": [{"sensorReport": [{"type": "Temperature", "value": 5.0,
                                                   "uom": "CEL"}]}]}  # fmt: skip
    client = _OnChainClient(ev, "processor")
    client.committed = True
    warmer = {
        **ev,
        "sensorElementList": [
            {"sensorReport": [{"type": "Temperature", "value": 31.5, "uom": "CEL"}]}
        ],
    }
    damaged = {**ev, "disposition": "damaged"}
    for other, field in ((warmer, "sensorElementList"), (damaged, "disposition")):
        r = ImportResult(0, other, "other", codes=(code,), event_id="urn:uuid:2")
        got = _OnChain(client, "processor").find(r)  # type: ignore[arg-type]
        assert got is not None
        assert got["status"] == "refused"
        assert f"with other content ({field} differ)" in got["reason"]
        assert "record " + bytes(32).hex() + " by processor" in got["reason"]
    same = ImportResult(0, dict(ev), "other", codes=(code,), event_id="urn:uuid:2")
    again = _OnChain(client, "processor").find(same)  # type: ignore[arg-type]
    assert again is not None
    assert again["status"] == "skipped"  # (a re-run of the same document)


def test_a_uuid_eventid_repeated_in_capitals_is_a_repeat(tmp_path: Path) -> None:
    # QA: the same urn:uuid in upper and lower case passed the document's own check, and
    # the node then refused the second (rule event-id)
    from node.epcis import import_document

    a = {"type": "ObjectEvent", "eventTime": "2026-03-01T08:00:00+08:00", "action": "ADD",
         "bizStep": "commissioning", "epcList": ["urn:x:u:1"],
         "eventID": "urn:uuid:88888888-aaaa-4aaa-8aaa-aaaaaaaaaaaa"}  # fmt: skip
    b = {
        **a,
        "epcList": ["urn:x:u:2"],
        "eventID": "urn:uuid:88888888-AAAA-4AAA-8AAA-AAAAAAAAAAAA",
    }
    results = import_document({"type": "EPCISDocument", "epcisBody": {"eventList": [a, b]}})
    assert results[0].ok
    assert not results[1].ok
    assert "repeats event 0's" in results[1].reason


def test_a_reimported_event_is_compared_by_the_instant_its_time_names():
    # QA: the same eventTime written as another offset read as another event (refused,
    # "already names another event") instead of skipped
    from cli.epcis_cmd import _instant

    assert _instant("2026-03-01T08:00:00+08:00") == _instant("2026-03-01T00:00:00Z")
    assert _instant("2026-03-01T08:00:00+08:00") != _instant("2026-03-01T08:00:00Z")
    assert _instant("not a time") == "not a time"


def test_an_imported_event_without_an_eventid_gets_the_one_record_sign_gives():
    # QA re-check: imported events had no eventID, so a mistaken sale could not be declared
    # and a re-run refused (or repeated) what the first run committed
    from cli.draft import event_id_for
    from cli.epcis_cmd import _with_event_id
    from node.epcis import import_document

    ev = object_event(["urn:x:9"])
    [r] = import_document([ev])
    got = _with_event_id(r, "farm")
    assert got.event is not None
    assert got.event["eventID"] == got.event_id == event_id_for("farm", ev)
    assert _with_event_id(got, "farm") == got  # one it has is kept
    [bad] = import_document([{"type": "Nope"}])
    assert _with_event_id(bad, "farm") is bad


def test_a_refused_code_that_is_not_unicode_is_reported_not_a_traceback(tmp_path: Path) -> None:
    # QA re-check: the refusal quoted the raw code, and printing it raised UnicodeEncodeError
    _three_events(tmp_path)
    doc = {"type": "EPCISDocument", "epcisBody": {"eventList": [object_event(["urn:x:\ud800"])]}}
    (tmp_path / "doc.jsonld").write_text(json.dumps(doc))  # (as the escape \ud800)
    args = ("epcis", "import", "doc.jsonld", "--key", "farm.key", "--genesis", "g.json")
    r = suyuan(*args, "--dry-run", cwd=tmp_path)
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr
    assert "refused" in r.stdout
    assert "0 of 1 events pass the checks made offline" in r.stdout


def test_the_same_event_twice_in_a_document_is_refused_the_second_time(tmp_path: Path) -> None:
    # QA: two identical events without an eventID (so the same derived one): the second was
    # reported "skipped, already on this chain", where the first was this import's own
    (tmp_path / "g.json").write_text(genesis().to_json())
    write_key_file(tmp_path / "farm.key", key("farm"), None)
    ev = object_event(["urn:qa:twice:1"])
    doc = {"type": "EPCISDocument", "epcisBody": {"eventList": [ev, ev]}}
    (tmp_path / "doc.jsonld").write_text(json.dumps(doc))
    args = ("epcis", "import", "doc.jsonld", "--key", "farm.key", "--genesis", "g.json")
    r = suyuan(*args, "--dry-run", "--json", cwd=tmp_path)
    assert r.returncode == 1, r.stderr
    events = json.loads(r.stdout)["events"]
    assert [e["status"] for e in events] == ["ok (dry run)", "refused"]
    assert events[1]["reason"].startswith("event 0 is the same event (its eventID, derived")


def test_an_epcis_xml_document_is_named_as_xml(tmp_path: Path) -> None:
    # QA: an EPCIS XML document was refused as "not valid JSON (Expecting value ...)"
    _three_events(tmp_path)
    (tmp_path / "doc.xml").write_bytes(
        b'\xef\xbb\xbf<?xml version="1.0"?>\n<epcis:EPCISDocument schemaVersion="2.0"/>'
    )
    args = ("epcis", "import", "doc.xml", "--key", "farm.key", "--genesis", "g.json", "--dry-run")
    r = suyuan(*args, cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith("error: doc.xml: EPCIS document is XML, and JSON is read here")
    assert len(r.stderr.splitlines()) == 1
