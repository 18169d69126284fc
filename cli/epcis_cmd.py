"""`suyuan epcis import|export`: GS1 EPCIS 2.0 documents in and out."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.text import Text

from cli.common import (
    console,
    counted,
    err_console,
    interrupt_exit_code,
    note_interruption,
    print_json,
    quorum_lost,
    read_json_file,
    record_get_hint,
    safe,
    unicode_text,
    write_text_atomic,
)
from cli.draft import event_id_for
from cli.nodeaddr import NodeOpt, resolve_node
from cli.trace_cmd import node_dict
from node.client import LedgerClient, event_differences
from node.custody import check_commission_prefixes
from node.envelope import Envelope
from node.epcis import Committed, ImportResult, export_document, import_document, normalize_code
from node.errors import InputError, LedgerError, NodeUnavailableError, NotFoundError
from node.genesis import Genesis
from node.keys import load_key_file
from node.records import CATEGORIES, TraceRecord, event_time_ms, make_record, sign_record
from node.textrules import json_text
from proto import types_pb2

app = typer.Typer(
    help="Import EPCIS 2.0 documents as records; export a code's history.", no_args_is_help=True
)


@app.command("import")
def import_cmd(
    document: Annotated[
        Path,
        typer.Argument(metavar="DOC.jsonld", help="EPCIS 2.0 JSON/JSON-LD document."),
    ],
    key: Annotated[Path, typer.Option("--key", help="Key of the member who records the events.")],
    genesis: Annotated[Path | None, typer.Option("--genesis", help="genesis.json.")] = None,
    category: Annotated[str, typer.Option("--category", help=", ".join(CATEGORIES))] = "other",
    node: NodeOpt = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Check only; submit nothing.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Sign and submit each event of DOC.jsonld as a record, in document order.

    Events go in batches of up to 100, which commit together (an error declaration starts
    a batch: the event it declares is committed first). Each event is reported as
    imported (with its record id and log index), skipped (already on the chain),
    refused with the reason, or pending (a re-run: an earlier run's record of it, not
    committed within 30 s; exit 5 when nothing was refused). Exit 0 only if every event
    was imported or skipped. An unreachable
    node, or a batch not committed within 30 s (+0.1 s an event; the quorum lost, say),
    stops the import at once: one line, exit 5; a re-run skips what was committed.
    """
    doc = read_json_file(document, "EPCIS document")
    try:
        results = import_document(doc, category=category)
    except InputError as e:  # (QA: the document was not named)
        raise InputError(f"{document}: {e}") from e
    k = load_key_file(key)
    results = _once_each([_with_event_id(r, k.name) for r in results])
    target = None if dry_run and genesis else resolve_node(node)
    gpath = genesis or (target.genesis if target else None)
    if gpath is None:
        raise InputError("--genesis is required outside a local testnet")
    g = Genesis.load(gpath)
    report = _Report(live=not as_json)
    client = LedgerClient(target.address) if (target and not dry_run) else None
    lost: NodeUnavailableError | None = None
    interrupted = False
    on_chain = _OnChain(client, k.name)
    exit_code = 130  # Ctrl-C; 143 when stopped by SIGTERM (a timeout, a service manager)
    try:
        for chunk in _chunks(results):
            rows: list[dict[str, Any]] = []  # the chunk's, in document order
            sends: list[_Send] = []  # those signed, to submit as one batch
            for r in chunk:
                row: dict[str, Any] = {"position": r.position, "codes": list(r.codes)}
                try:
                    found = on_chain.find(r)  # a re-run, or an export of this very chain
                except NodeUnavailableError as e:
                    lost = e
                    break
                if found is not None:
                    row |= found
                elif r.event is None:
                    row |= {"status": "refused", "reason": r.reason}
                else:
                    try:
                        rec = make_record(g, k.name, r.event, category=category)
                        check_commission_prefixes(rec, g)  # (QA: a dry run said ok)
                        env = sign_record(rec, k)
                    except LedgerError as e:
                        row |= {"status": "refused", "reason": str(e)}
                    else:
                        row["record_id"] = env.record_id.hex()
                        row["status"] = "ok (dry run)"
                        sends.append((row, r, env))
                rows.append(row)
            if client is not None and lost is not None:  # (stopped before the batch went)
                rows = [x for x in rows if x["status"] != "ok (dry run)"]
            elif client is not None and sends:
                try:
                    lost = _submit(client, sends, on_chain)
                except KeyboardInterrupt:  # Ctrl-C: report what was done, then stop
                    interrupted = True
                    exit_code = interrupt_exit_code()
                    for row, _, _ in sends:
                        if row["status"] not in ("imported", "refused", "skipped"):
                            _doubt(row, "interrupted while submitting")
            for row in rows:
                report.append(row)
            if lost is not None or interrupted:
                break
    except KeyboardInterrupt:
        interrupted = True
        exit_code = interrupt_exit_code()
    finally:
        if client is not None:
            client.close()
    _print_report(document, report, as_json, dry_run, len(results))
    if interrupted:
        note_interruption()
        done = sum(1 for x in report if x["status"] == "imported")
        err_console.print(
            f"interrupted: {done} event(s) imported, the events above; re-run the import to "
            "go on (an event already on the chain, by its eventID, the one derived for it, "
            "or an export's record id, is skipped)",
            markup=False,
        )
        raise typer.Exit(exit_code)
    if lost is not None:  # what was done is printed above; the event in doubt is named
        done = sum(1 for x in report if x["status"] == "imported")
        doubt = report[-1] if report and report[-1]["status"] == "unknown" else None
        where = f"stopped at event {doubt['position'] if doubt else len(report)}"
        maybe = (
            f"; record {doubt['record_id']} may have been committed: "
            f"{record_get_hint(doubt['record_id'], target.address if target else '?')}"
            if doubt
            else ""
        )
        raise NodeUnavailableError(
            f"{lost} ({where}: {done} event(s) imported before{maybe})"
        ) from lost
    if any(r["status"] == "refused" for r in report):
        raise typer.Exit(1)
    pending = [r["record_id"] for r in report if r["status"] == "pending"]
    if pending:  # (sent by an earlier run: their outcome is not known yet)
        more = f" and {len(pending) - 1} more" if len(pending) > 1 else ""
        raise NodeUnavailableError(
            f"{len(pending)} event(s) are on records an earlier run sent, still pending "
            f"(record {pending[0]}{more}): `suyuan node status` tells whether enough "
            "validators answer; re-run the import once they commit (they are then skipped)"
        )


def _with_event_id(r: ImportResult, author: str) -> ImportResult:
    """An event without an eventID gets the one ``record sign`` would give it
    (``cli.draft.event_id_for``): it can then be declared in error, and a re-run finds it
    on the chain (QA: a re-run refused it as commission-once, or committed an inspection
    twice; a sale imported by mistake closed its code for good)."""
    if r.event is None or "eventID" in r.event:
        return r
    eid = event_id_for(author, r.event)
    return dataclasses.replace(r, event={**r.event, "eventID": eid}, event_id=eid)


def _once_each(results: list[ImportResult]) -> list[ImportResult]:
    """The document's events, a later one that is the same event as an earlier one (no
    eventID of its own, so the same derived one: ``_with_event_id``) refused, as a repeated
    eventID is (QA: the second was reported "skipped, already on this chain", where the
    first was this very import's)."""
    first: dict[tuple[str, bool], int] = {}
    out: list[ImportResult] = []
    for r in results:
        key = (r.event_id, r.event is not None and "errorDeclaration" in r.event)
        if r.event is None or not r.event_id:
            out.append(r)
        elif key in first:
            out.append(
                dataclasses.replace(
                    r,
                    event=None,
                    reason=f"event {first[key]} is the same event (its eventID, derived from "
                    f"the event, is {r.event_id!r}): EPCIS names each event once",
                )
            )
        else:
            first[key] = r.position
            out.append(r)
    return out


class _OnChain:
    """Finds an event already committed on this chain, so that importing a document twice
    (a re-run after an interruption) or re-importing this chain's own export skips it.

    An event is on the chain if it carries an export's ``suyuan:recordId`` that this chain
    has committed, or its ``eventID`` is that of a committed record naming the event's first
    code (read from that code's history, once per code, then kept up to date); either way
    only if that record is this event: the same type, eventTime, bizStep and codes (from the
    history), then every field read as meant (``event_differences``). An eventID
    on another event is refused (EPCIS event ids are unique); an edited export whose record
    id names another event is imported as the new event it is."""

    def __init__(self, client: LedgerClient | None, author: str) -> None:
        self.client = client
        self.author = author  # who signs this import's records
        # code -> (eventID, declares?) -> (record id, log index, what the record is, author)
        self.by_code: dict[str, dict[tuple[str, bool], _Hit]] = {}

    def find(self, r: ImportResult) -> dict[str, Any] | None:
        if self.client is None:
            return None
        if r.exported_as:
            try:
                rr = self.client.get_record(bytes.fromhex(r.exported_as))
            except (NotFoundError, ValueError):
                rr = None
            if (
                rr is not None
                and rr.info.height > 0
                and _shape(rr.info) == _wanted(r)
                and not _differs(rr.envelope.payload, r)
            ):
                return self._skipped(
                    r.exported_as, rr.info.log_index, "the export's record", rr.info.author
                )
        if r.event_id and r.codes:
            hit = self._event_ids(r.codes[0]).get((r.event_id, _wanted(r)[-1]))
            if hit is not None and r.event is not None:
                if hit[2] != _wanted(r):
                    return {
                        "status": "refused",
                        "reason": f"eventID {r.event_id} already names another event on this "
                        f"chain (record {hit[0]}): EPCIS gives each event its own id",
                    }
                rr = self.client.get_record(bytes.fromhex(hit[0]))
                differ = _differs(rr.envelope.payload, r)
                if differ:  # (QA-R: a re-sent sensor reading, another disposition, was
                    # reported "already on this chain" and not recorded, exit 0)
                    return {
                        "status": "refused",
                        "reason": f"eventID {r.event_id} is already on this chain (record "
                        f"{hit[0]} by {hit[3]}) with other content ({', '.join(differ)} "
                        "differ): EPCIS gives each event its own id; a correction is an error "
                        "declaration of that event (suyuan record declare) and a new event",
                    }
                return self._skipped(hit[0], hit[1], f"eventID {r.event_id}", hit[3])
        return None

    def find_again(self, r: ImportResult) -> dict[str, Any] | None:
        """``find`` with the event's code read afresh: an earlier run's record that was
        still pending when this run looked may have committed since (then the event is
        skipped, not refused). None when the node cannot be asked."""
        if r.codes:
            self.by_code.pop(r.codes[0], None)
        try:
            return self.find(r)
        except LedgerError:
            return None

    def add(self, r: ImportResult, record_id: str, log_index: int) -> None:
        if r.event_id and r.codes and r.codes[0] in self.by_code:
            wanted = _wanted(r)
            self.by_code[r.codes[0]][(r.event_id, wanted[-1])] = (
                record_id, log_index, wanted, self.author
            )  # fmt: skip

    def _event_ids(self, code: str) -> dict[tuple[str, bool], _Hit]:
        if code not in self.by_code:
            assert self.client is not None
            seen: dict[tuple[str, bool], _Hit] = {}
            page = ""
            for _ in range(10_000):  # pages of 1,000 records
                try:
                    resp = self.client.trace_history(code, limit=1000, page_token=page)
                except NotFoundError:
                    break  # a code this chain does not know yet
                for info in resp.records:
                    if info.event_id:
                        where = (info.record_id.hex(), info.log_index, _shape(info), info.author)
                        seen.setdefault((info.event_id, where[2][-1]), where)
                page = resp.next_page_token
                if not page:
                    break
            self.by_code[code] = seen
        return self.by_code[code]

    @staticmethod
    def _skipped(record_id: str, log_index: int, by: str, author: str) -> dict[str, Any]:
        return {  # (QA: another member's record was skipped without naming that member)
            "status": "skipped",
            "reason": f"already on this chain ({by}): record {record_id} by {author}",
            "record_id": record_id,
            "log_index": log_index,
            "author": author,
        }


def _differs(payload: bytes, r: ImportResult) -> list[str]:
    """The fields in which the committed record's event (``payload``) and the event to
    import differ ([] if they are the same event: a re-run, or this chain's own export)."""
    try:
        committed = TraceRecord.from_payload(payload, strict=False).event
    except LedgerError:
        return ["event"]
    return event_differences(committed, r.event or r.exported or {})


#: a committed record of an eventID: its id, log index, what it is (``_shape``), author
_Hit = tuple[str, int, tuple[Any, ...], str]


#: what ``suyuan:state`` of an export says of the code (``trace_cmd.node_dict``'s keys)
_STATE_KEYS = ("code", "custodian", "status", "recalled", "recalled_by", "recalled_at",
               "container", "disposition", "held_at", "held_by", "held_via",
               "void_at")  # fmt: skip


def _shape(info: Any) -> tuple[Any, ...]:
    """What a committed record's event is (``RecordInfo``): type, eventTime, bizStep, codes,
    and whether it is an error declaration (which repeats its event's eventID)."""
    codes = frozenset(normalize_code(c) for c in info.codes)
    when = _instant(info.event_time)
    return (info.event_type, when, info.biz_step, codes, bool(info.error_declaration))


def _instant(when: Any) -> Any:
    """An eventTime as the instant it names (QA: the same instant written another way read
    as another event), or as written if it is no RFC 3339 date-time."""
    ms = event_time_ms(when) if isinstance(when, str) else None
    return when if ms is None else ms


def _wanted(r: ImportResult) -> tuple[Any, ...]:
    """The same for an event to import."""
    ev = r.event or r.exported or {}
    step = ev.get("bizStep", "")
    return (ev.get("type"), _instant(ev.get("eventTime")), step if isinstance(step, str) else "",
            frozenset(r.codes), isinstance(ev.get("errorDeclaration"), dict))  # fmt: skip


def _doubt(row: dict[str, Any], why: str) -> None:
    """An event whose record was sent and has no answer: it may have been committed."""
    row |= {"status": "unknown", "reason": f"{row['record_id']}: {why}; it may have been committed"}


def _wait_committed(
    client: LedgerClient, record_id: bytes, deadline: float
) -> types_pb2.RecordInfo | None:
    """Wait (until ``time.monotonic()`` is ``deadline``) for the node to commit
    ``record_id``; the record's last info (None: gone from the pool, or no answer)."""
    while True:
        try:
            info = client.get_record(record_id, timeout=5).info
        except LedgerError:
            return None  # (gone from the pool, or no answer: the refusal stands)
        if info.height > 0 or time.monotonic() >= deadline:
            return info
        time.sleep(0.2)


#: an event's report row, its import result and its signed record
_Send = tuple[dict[str, Any], ImportResult, Envelope]
#: events a batch holds at most (one round of consensus commits them together), and the
#: bytes of their records (under gRPC's default 4 MiB message)
BATCH_EVENTS, BATCH_BYTES = 100, 2 * 1024 * 1024
#: seconds a batch may take from submission to its commit answer: a record's 30 s, and
#: 0.1 s an event more
BATCH_TIMEOUT_S, BATCH_TIMEOUT_PER_EVENT_S = 30.0, 0.1


def _chunks(results: list[ImportResult]) -> Iterator[list[ImportResult]]:
    """The document's events in batches (``BATCH_EVENTS``, ``BATCH_BYTES``), in order. An
    error declaration starts a batch of its own making: the event it declares must be
    committed first (it may be in the batch before), as a declaration names a committed
    record; the corrective events after it go with it (the node admits them in order)."""
    chunk: list[ImportResult] = []
    size = 0
    for r in results:
        n = len(json_text(r.event)) if r.event is not None else 0
        declares = r.event is not None and "errorDeclaration" in r.event
        if chunk and (declares or len(chunk) >= BATCH_EVENTS or size + n > BATCH_BYTES):
            yield chunk
            chunk, size = [], 0
        chunk.append(r)
        size += n
    if chunk:
        yield chunk


def _submit(
    client: LedgerClient, sends: list[_Send], on_chain: _OnChain
) -> NodeUnavailableError | None:
    """Submit a batch of signed records and fill in their rows: imported (height, log
    index), refused (the node's reason; an event an interrupted earlier run committed
    meanwhile: skipped), or unknown (sent, no answer). One batch for many events: each
    waited for its own block before (QA: 1 event a second with a validator down). Returns
    the error that stops the import (the node is gone, or nothing commits), else None."""
    timeout = BATCH_TIMEOUT_S + BATCH_TIMEOUT_PER_EVENT_S * len(sends)
    deadline = time.monotonic() + PENDING_WAIT_S  # (for earlier runs' pending records)
    answers = client.submit_batch([env for _, _, env in sends], timeout=timeout)
    try:
        admitted = next(answers)
    except NodeUnavailableError as e:
        for row, _, _ in sends:
            _doubt(row, "no answer")
        return NodeUnavailableError(f"{e}{quorum_lost(client)}")
    waiting: dict[bytes, _Send] = {}
    for send, res in zip(sends, admitted.results, strict=True):
        if res.code:
            _refused(send, res.message, on_chain, deadline)
        else:
            send[0]["status"] = "submitted"
            waiting[send[2].record_id] = send
    if not waiting:
        return None
    try:
        committed = next(answers)
    except (NodeUnavailableError, StopIteration) as e:
        for row, _, _ in waiting.values():
            _doubt(row, "accepted by the node, not committed in time")
        return NodeUnavailableError(f"{e or 'no commit answer'}{quorum_lost(client)}")
    for res in committed.results:
        row, r, env = send = waiting[res.record_id]
        if res.code:
            _refused(send, res.message, on_chain, deadline)
        else:
            row |= {"status": "imported", "height": res.height, "log_index": res.log_index}
            on_chain.add(r, env.record_id.hex(), res.log_index)
    return None


#: an event-id refusal naming the pending record that holds the eventID
_PENDING = re.compile(r"is on a pending record \(record ([0-9a-f]{64})\)")
#: seconds an import waits for an earlier run's pending record of the same event to commit
PENDING_WAIT_S = 30.0


def _refused(send: _Send, reason: str, on_chain: _OnChain, deadline: float) -> None:
    """A refused record: committed meanwhile by an interrupted earlier run (skipped)? An
    earlier run's record of this event still pending (a re-run once the quorum is back:
    QA, "refused" for events that then committed) is waited for, until ``deadline`` (one
    for the batch), then skipped."""
    row, r, _ = send
    m = _PENDING.search(reason)
    info = None
    if m is not None and on_chain.client is not None:
        info = _wait_committed(on_chain.client, bytes.fromhex(m.group(1)), deadline)
    late = on_chain.find_again(r)
    if late is not None and late["status"] == "skipped":
        row |= late
    elif m is not None and info is not None and info.height == 0 and info.author == on_chain.author:
        row |= {  # (QA-V: a re-run with the quorum still lost called its own events refused)
            "status": "pending",
            "record_id": m.group(1),
            "reason": f"{m.group(1)}: an earlier run's record of this event, still pending "
            f"(not committed in {PENDING_WAIT_S:g} s)",
        }
    else:
        row |= {"status": "refused", "reason": reason}


class _Report(list[dict[str, Any]]):
    """The per-event rows, each printed as it is added when ``live`` (QA: a long import
    printed nothing until its end, so an operator tailing it saw nothing, and a killed
    import's report was lost); JSON is printed whole at the end."""

    def __init__(self, *, live: bool) -> None:
        super().__init__()
        self.live = live

    def append(self, row: dict[str, Any]) -> None:
        super().append(row)
        if self.live:
            _print_row(row)


def _print_row(row: dict[str, Any]) -> None:
    color = {"refused": "red", "unknown": "yellow", "pending": "yellow", "skipped": "cyan"}.get(
        row["status"], "green"
    )
    if row["status"] == "ok (dry run)":  # (its record id is of this signing only: QA)
        detail = f"{len(row['codes'])} code(s)"
    else:
        detail = safe(row.get("reason") or row.get("record_id", ""))  # (QA: \ud800 crashed it)
    if row.get("log_index") is not None and row["status"] == "imported":
        detail += f" (log index {row['log_index']})"
    console.print(
        Text.assemble(f"  event {row['position']:>3}: ", (str(row["status"]), color), f" {detail}")
    )


def _print_report(
    document: Path, report: list[dict[str, Any]], as_json: bool, dry_run: bool, total: int
) -> None:
    """The summary (the rows were printed as they came: ``_Report``), or the whole report
    as JSON; ``total`` is the document's event count (an interrupted or stopped import
    reports fewer)."""
    ok = [r for r in report if r["status"] in ("imported", "submitted", "ok (dry run)")]
    skipped = sum(1 for r in report if r["status"] == "skipped")
    if as_json:
        print_json(
            {
                "document": str(document),
                "events": report,
                "imported": 0 if dry_run else len(ok),
                "skipped": skipped,
                "refused": sum(1 for r in report if r["status"] == "refused"),
                "pending": sum(1 for r in report if r["status"] == "pending"),
                **({"would_import": len(ok)} if dry_run else {}),
            }
        )
        return
    verb = (
        "pass the checks made offline (dry run: nothing was submitted; the chain's own rules, "
        "such as commission-once and custody, are judged by a node at import)"
        if dry_run
        else "imported"
    )
    also = f", {skipped} already on the chain" if skipped else ""
    console.print(f"{len(ok)} of {total} events {verb}{also}")


@app.command("export")
def export_cmd(
    code: Annotated[
        str,
        typer.Argument(
            metavar="CODE", help="Trace code whose history to export.", callback=unicode_text
        ),
    ],
    node: NodeOpt = None,
    out: Annotated[Path | None, typer.Option("--out", help="File (default: stdout).")] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="With --out: print what was written as JSON.")
    ] = False,
) -> None:
    """Write CODE's committed history as an EPCIS 2.0 JSON-LD document (on stdout, the
    document is JSON already)."""
    target = resolve_node(node)
    items: list[Committed] = []
    state: dict[str, Any] = {}
    with LedgerClient(target.address, timeout=30) as client:
        page = ""
        for _ in range(10_000):
            resp = client.trace_history(code, limit=1000, page_token=page)
            if resp.nodes:  # (the code's state now; a node of an earlier version sends none)
                state = {k: v for k, v in node_dict(resp.nodes[0]).items()
                         if k in _STATE_KEYS and v not in (None, "")}  # fmt: skip
            for info in resp.records:
                rr = client.get_record(info.record_id)
                env = Envelope(bytes(rr.envelope.payload), rr.envelope.payload_type)
                items.append(
                    Committed(
                        TraceRecord.from_payload(env.payload, strict=False),
                        info.log_index,
                        bytes(info.record_id),
                    )
                )
            page = resp.next_page_token
            if not page:
                break
    now = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    doc = export_document(items, creation_date=now, state=state)
    text = json_text(doc, indent=2) + "\n"
    if out is None:
        typer.echo(text, nl=False)
    else:
        write_text_atomic(out, text)
        if as_json:  # (DESIGN.md: a command that reads a node takes --json; QA)
            print_json({"code": code, "events": len(items), "file": str(out)})
        else:
            console.print(f"{counted(len(items), 'event')} of {code} -> {out}")
