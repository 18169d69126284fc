"""The `suyuan` command. Errors are turned into one line and an exit code here, only here."""

from __future__ import annotations

import errno
import os
import sys
from typing import Any

import rich.console
import typer
import typer.core
import typer.rich_utils  # (help: ``_paragraphs_reflowed``)

from cli import (
    audit_cmd,
    bench_cmd,
    checkpoint_cmd,
    consortium_cmd,
    epcis_cmd,
    evidence_cmd,
    handoff_cmd,
    keys_cmd,
    node_cmd,
    proof_cmd,
    recall_cmd,
    record_cmd,
    testnet_cmd,
    trace_cmd,
)
from cli.common import (
    catch_signals,
    err_console,
    interrupt_exit_code,
    interruption_reported,
    print_json,
    signalled,
)
from node.errors import LedgerError


def _flags_without_a_type() -> None:
    """Help shows a flag (``--json``, ``--fresh``) with no type: typer 0.2x labels it
    ``<bool>``, which reads as if it took a value (``--fresh true`` is then an error). A
    typer without that hook is left as it is."""
    option = getattr(typer.core, "TyperOption", None)
    shown = getattr(option, "display_type_rich", None)
    if option is None or shown is None:
        return

    def display_type_rich(self: Any, ctx: Any) -> str | None:
        if getattr(self, "is_flag", False) and not getattr(self, "count", False):
            return None
        return shown(self, ctx)  # type: ignore[no-any-return]

    option.display_type_rich = display_type_rich


_flags_without_a_type()


def _paragraphs_reflowed() -> None:
    """Help reflows a docstring's later paragraphs to the terminal, as its first: typer 0.2x
    kept their source line breaks, so lines broke twice at widths under 100. A paragraph
    that starts with ``\b`` keeps its lines (click's convention). A typer without that
    hook is left as it is."""
    rich_utils = sys.modules.get("typer.rich_utils")
    if rich_utils is None or not hasattr(rich_utils, "_fix_linebreaks"):
        return

    def fix_linebreaks(paragraphs: list[str], markup_mode: Any) -> str:
        return "\n\n".join(p if p.startswith("\b") else " ".join(p.split("\n")) for p in paragraphs)

    setattr(rich_utils, "_fix_linebreaks", fix_linebreaks)  # noqa: B010 (a private hook)


_paragraphs_reflowed()

app = typer.Typer(
    name="suyuan",
    help="Suyuan (溯源): a consortium ledger for important-product traceability.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(keys_cmd.app, name="keys")
app.add_typer(consortium_cmd.app, name="consortium")
app.add_typer(record_cmd.app, name="record")
app.add_typer(node_cmd.app, name="node")
app.add_typer(testnet_cmd.app, name="testnet")
app.add_typer(handoff_cmd.app, name="handoff")
app.add_typer(trace_cmd.app, name="trace")
app.command("recall")(recall_cmd.recall)
app.add_typer(epcis_cmd.app, name="epcis")
app.command("bench")(bench_cmd.bench)
app.command("prove")(proof_cmd.prove)
app.command("verify")(proof_cmd.verify)
app.command("audit")(audit_cmd.audit)
app.command("checkpoint")(checkpoint_cmd.checkpoint)
app.add_typer(evidence_cmd.app, name="evidence")


_OUTPUT_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO})


def one_line(text: str) -> str:
    """``text`` with its control characters escaped (a code holding a newline or a NUL is
    named in a refusal): the error stays one line on the terminal."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or c == " " else repr(c)[1:-1] for c in text)


def _click_error() -> type[Exception]:
    """click's ``ClickException`` as the typer in use has it: typer 0.22 and later carry
    their own copy of click, earlier ones use the ``click`` package."""
    return sys.modules[typer.BadParameter.__module__].ClickException  # type: ignore[no-any-return]


def usage_line(e: Any) -> str:
    """A usage error as one line: what is wrong, the command it is in, where help is."""
    ctx = getattr(e, "ctx", None)
    msg = one_line(e.format_message())
    if ctx is None:
        return f"error: {msg}"
    return f"error: {ctx.command_path}: {msg} (see '{ctx.command_path} --help')"


def _main() -> None:
    """Run the app without click's standalone mode, so that its usage errors (an unknown
    command, a missing argument, an option out of range) come here as exceptions and end
    as one line, exit 2, like every other refusal; click's own form is several lines in a
    box. ``--help``, ``typer.Exit`` and a command's return end as click would end them."""
    click_error = _click_error()
    try:
        rv = app(standalone_mode=False)
    except click_error as e:
        if type(e).__name__ == "NoArgsIsHelpError":  # click printed the help already
            sys.exit(e.exit_code)  # type: ignore[attr-defined]
        err_console.print(usage_line(e), markup=False, soft_wrap=True)
        sys.exit(e.exit_code)  # type: ignore[attr-defined]
    except typer.Abort:
        err_console.print("aborted", markup=False)
        sys.exit(1)
    if rv == 130 and signalled() and not interruption_reported():  # (typer's exit 130, unsaid)
        err_console.print("interrupted")
        sys.exit(signalled())
    sys.exit(rv if isinstance(rv, int) else 0)


def _pipe_closed(self: rich.console.Console) -> None:
    """A closed pipe noticed by rich while printing: quiet, exit 141 as if by SIGPIPE (rich's
    own exit 1 is the code the README gives a rule refusal)."""
    self.quiet = True
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no flush at exit
    raise SystemExit(141)


def run() -> None:
    """Console entry point: one line on stderr and a non-zero exit for any LedgerError, or
    for output that cannot be written (a full disk: exit 2). A closed pipe (``| head``)
    ends the command quietly, exit 141 (as if by SIGPIPE)."""
    rich.console.Console.on_broken_pipe = _pipe_closed  # type: ignore[method-assign]
    catch_signals()  # (QA: SIGTERM during `record submit --wait` lost the record's id)
    try:
        try:
            _main()
        except SystemExit:  # click ends every command so, success or not
            sys.stdout.flush()  # here, not at exit: a failed write is this run's error
            raise
    except LedgerError as e:
        if signalled():  # (QA: a call cut short by Ctrl-C read as a node timing out)
            err_console.print(f"interrupted: {one_line(str(e))}", markup=False, soft_wrap=True)
            sys.exit(signalled())
        err_console.print(f"error: {one_line(str(e))}", markup=False, soft_wrap=True)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(interrupt_exit_code())
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no flush at exit
        sys.exit(141)
    except OSError as e:  # commands name their own files and nodes; what is left is output
        if e.filename is None and e.errno in _OUTPUT_ERRNOS:
            line = (  # (QA-V: a committed record's id was lost with no word of it)
                f"cannot write the output: {e.strerror}; what the command did before it "
                "printed is done (a record it submitted is committed or pending): run it "
                "again with the output elsewhere, and it answers what is committed"
            )
        else:
            where = f"{e.filename}: " if e.filename is not None else ""
            line = f"{where}{e.strerror or e}"
        err_console.print(f"error: {one_line(line)}", markup=False)
        sys.exit(2)


__all__ = ["app", "one_line", "print_json", "run"]
