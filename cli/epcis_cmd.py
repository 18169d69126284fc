"""`suyuan epcis import|export`: GS1 EPCIS 2.0 documents in and out."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.text import Text

from cli.common import console, err_console, print_json, read_json_file, write_text_atomic
from cli.nodeaddr import resolve_node
from node.client import LedgerClient
from node.envelope import Envelope
from node.epcis import Committed, export_document, import_document
from node.errors import InputError, LedgerError, NodeUnavailableError
from node.genesis import Genesis
from node.keys import load_key_file
from node.records import CATEGORIES, TraceRecord, make_record, sign_record

app = typer.Typer(
    help="Import EPCIS 2.0 documents as records; export a code's history.", no_args_is_help=True
)
NodeOpt = Annotated[str | None, typer.Option("--node", help="host:port.")]


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
    """Sign and submit each event of DOCUMENT as a record, in document order.

    Each event is reported as imported (with its record id and log index) or refused with
    the reason. Exit 0 only if every event was imported. An unreachable node stops the
    import at once: one line, exit 5.
    """
    doc = read_json_file(document, "EPCIS document")
    results = import_document(doc, category=category)
    target = None if dry_run and genesis else resolve_node(node)
    gpath = genesis or (target.genesis if target else None)
    if gpath is None:
        raise InputError("--genesis is required outside a local testnet")
    g = Genesis.load(gpath)
    k = load_key_file(key)
    report: list[dict[str, Any]] = []
    client = LedgerClient(target.address) if (target and not dry_run) else None
    lost: NodeUnavailableError | None = None
    interrupted = False
    try:
        for r in results:
            row: dict[str, Any] = {"position": r.position, "codes": list(r.codes)}
            if r.event is None:
                row |= {"status": "refused", "reason": r.reason}
            else:
                try:
                    env = sign_record(make_record(g, k.name, r.event, category=category), k)
                    row["record_id"] = env.record_id.hex()
                    if client is not None:
                        resp = client.submit(env, wait=True, timeout=30)
                        row |= {
                            "status": "imported" if resp.committed else "submitted",
                            "height": resp.height,
                            "log_index": resp.log_index,
                        }
                    else:
                        row["status"] = "ok (dry run)"
                except NodeUnavailableError as e:  # no event after this one can succeed
                    lost = e
                    _in_doubt(row, report, "no answer")
                    break
                except LedgerError as e:
                    row |= {"status": "refused", "reason": str(e)}
                except KeyboardInterrupt:  # Ctrl-C: report what was done, then stop
                    interrupted = True
                    _in_doubt(row, report, "interrupted while submitting")
                    break
            report.append(row)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        if client is not None:
            client.close()
    _print_report(document, report, as_json, dry_run, len(results))
    if interrupted:
        done = sum(1 for x in report if x["status"] == "imported")
        err_console.print(
            f"interrupted: {done} event(s) imported, the events above; re-run the import to "
            "go on (imported events are refused as commission-once or replays)",
            markup=False,
        )
        raise typer.Exit(130)
    if lost is not None:  # what was done is printed above; the event in doubt is named
        rid = report[-1].get("record_id", "")
        done = sum(1 for x in report if x["status"] == "imported")
        raise NodeUnavailableError(
            f"{lost} (stopped at event {report[-1]['position']}: {done} event(s) imported "
            f"before; record {rid} may have been committed: `suyuan record get {rid}`)"
        ) from lost
    if any(r["status"] == "refused" for r in report):
        raise typer.Exit(1)


def _in_doubt(row: dict[str, Any], report: list[dict[str, Any]], why: str) -> None:
    """Report an event whose record was (maybe) sent and has no answer: it may have been
    committed. An event stopped before its record was signed is not reported."""
    if "record_id" in row:
        row |= {
            "status": "unknown",
            "reason": f"{row['record_id']}: {why}; it may have been committed",
        }
        report.append(row)


def _print_report(
    document: Path, report: list[dict[str, Any]], as_json: bool, dry_run: bool, total: int
) -> None:
    """The per-event report; ``total`` is the document's event count (an interrupted or
    stopped import reports fewer)."""
    ok = [r for r in report if r["status"] in ("imported", "submitted", "ok (dry run)")]
    if as_json:
        print_json(
            {
                "document": str(document),
                "events": report,
                "imported": 0 if dry_run else len(ok),
                "refused": sum(1 for r in report if r["status"] == "refused"),
                **({"would_import": len(ok)} if dry_run else {}),
            }
        )
        return
    for row in report:
        color = {"refused": "red", "unknown": "yellow"}.get(row["status"], "green")
        detail = row.get("reason") or row.get("record_id", "")
        if row.get("log_index") is not None and row["status"] == "imported":
            detail += f" (log index {row['log_index']})"
        console.print(
            Text.assemble(
                f"  event {row['position']:>3}: ", (str(row["status"]), color), f" {detail}"
            )
        )
    verb = "would be imported (dry run: nothing was submitted)" if dry_run else "imported"
    console.print(f"{len(ok)} of {total} events {verb}")


@app.command("export")
def export_cmd(
    code: Annotated[
        str,
        typer.Argument(metavar="CODE", help="Trace code whose history to export."),
    ],
    node: NodeOpt = None,
    out: Annotated[Path | None, typer.Option("--out", help="File (default: stdout).")] = None,
) -> None:
    """Write CODE's committed history as an EPCIS 2.0 JSON-LD document."""
    target = resolve_node(node)
    items: list[Committed] = []
    with LedgerClient(target.address, timeout=30) as client:
        page = ""
        for _ in range(10_000):
            resp = client.trace_history(code, limit=1000, page_token=page)
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
    doc = export_document(items, creation_date=now)
    text = json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    if out is None:
        typer.echo(text, nl=False)
    else:
        write_text_atomic(out, text)
        console.print(f"{len(items)} events of {code} -> {out}")
