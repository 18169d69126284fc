"""cli.common file helpers: a failed write is one OutputError and leaves nothing behind."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from cli.common import write_text_atomic
from node.errors import InputError, OutputError


def _bad_targets(tmp_path: Path) -> list[Path]:
    (tmp_path / "afile").write_text("keep")
    (tmp_path / "adir").mkdir()
    return [Path("/proc/suyuan-g.json"), tmp_path / "afile" / "x", tmp_path / "adir"]


def test_write_text_atomic_failure_is_one_output_error(tmp_path):
    for target in _bad_targets(tmp_path):
        with pytest.raises(OutputError, match=rf"^cannot write {target}: \S") as info:
            write_text_atomic(target, "{}")
        assert isinstance(info.value, InputError)
        assert info.value.exit_code == 2
    assert (tmp_path / "afile").read_text() == "keep"
    assert (tmp_path / "adir").is_dir()
    assert list((tmp_path / "adir").iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adir", "afile"]  # no temp file


def test_write_text_atomic_writes(tmp_path):
    (tmp_path / "sub").mkdir()
    write_text_atomic(tmp_path / "sub" / "g.json", "x")
    assert (tmp_path / "sub" / "g.json").read_text() == "x"


def test_write_under_a_file_names_the_file_that_is_not_a_directory(tmp_path):
    (tmp_path / "genesis.json").write_text("{}")
    for target in (tmp_path / "genesis.json" / "x", tmp_path / "genesis.json" / "y" / "z"):
        with pytest.raises(OutputError, match=f"{tmp_path / 'genesis.json'} is not a directory"):
            write_text_atomic(target, "{}")


def test_console_prints_data_as_given():
    # rich turned ``:pig:`` into an emoji and read ``[/]`` as markup (an error, or lost text)
    from rich.tree import Tree

    from cli.common import console, err_console
    from cli.trace_cmd import render_tree
    from proto import services_pb2

    data = "farm:pig:batch7 urn:x:x: a[/]b [bold]c[/bold] d\\"
    for c in (console, err_console):
        with c.capture() as cap:
            c.print(data)
        assert cap.get() == data + "\n"
    node = services_pb2.TraceNode(
        code="lot:pig:[b]", parent_code="farm:pig:batch7", relation="input", depth=1
    )
    tree = render_tree("farm:pig:batch7", [node], "back from")
    assert isinstance(tree, Tree)
    with console.capture() as cap:
        console.print(tree)
    out = cap.get()
    assert "back from farm:pig:batch7" in out
    assert "lot:pig:[b]  input" in out


def test_output_that_cannot_be_written_is_one_line(tmp_path):
    # `... > /dev/full` ended in a traceback (OSError: No space left on device)
    import os
    import subprocess

    from tests.cli.helpers import SUYUAN

    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full here")
    with open("/dev/full", "w") as full:
        r = subprocess.run(
            [SUYUAN, "keys", "new", "farm", "--unencrypted", "--out", str(tmp_path / "f.key")],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().splitlines()[-1] == (
        "error: cannot write the output: No space left on device; what the command did "
        "before it printed is done (a record it submitted is committed or pending): run it "
        "again with the output elsewhere, and it answers what is committed"
    )
    assert (tmp_path / "f.key").exists()  # (what it did before printing: done, as it says)
    assert "Traceback" not in r.stderr


def test_write_follows_a_symlink_and_writes_into_special_files(tmp_path):
    # the rename replaced a symlink with a file, and (as root) /dev/full with a file
    import os

    target = tmp_path / "real.json"
    target.write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    write_text_atomic(link, "new")
    assert link.is_symlink()
    assert target.read_text() == "new"
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # a reader, so the write does not block
    try:
        write_text_atomic(fifo, "through")
        assert os.read(fd, 100) == b"through"
    finally:
        os.close(fd)
    assert fifo.exists()
    assert not fifo.is_file()
    if os.path.exists("/dev/full"):
        with pytest.raises(OutputError, match=r"^cannot write /dev/full: "):
            write_text_atomic(Path("/dev/full"), "x")
        assert not Path("/dev/full").is_file()


def test_a_trace_tree_piped_is_not_cut_to_80_columns():
    # `suyuan trace back CODE | cat` printed "custodian farm, cl"
    from cli.common import console
    from cli.trace_cmd import render_tree
    from proto import services_pb2

    code = "https://id.gs1.org/01/04012345778892/21/" + "7" * 60
    node = services_pb2.TraceNode(
        code=code + "-child", parent_code=code, relation="input", depth=1, custodian="farm",
        status="closed",
    )  # fmt: skip
    with console.capture() as cap:
        console.print(render_tree(code, [node], "back from"))
    out = cap.get()
    assert f"{code}-child  input · custodian farm, closed" in out
    assert f"back from {code}" in out


def test_json_inputs_refuse_a_repeated_key(tmp_path):
    # the standard library kept the last value: a draft could be signed as another step
    from cli.common import read_json_file

    f = tmp_path / "ev.json"
    f.write_text('{"event": {"bizStep": "shipping", "bizStep": "recalling"}}')
    with pytest.raises(InputError, match="repeats the key 'bizStep' in one object"):
        read_json_file(f, "event")
    f.write_text('{"a": [{"b": 1}, {"b": 2}]}')  # the same key in two objects is fine
    assert read_json_file(f, "event") == {"a": [{"b": 1}, {"b": 2}]}


def test_error_lines_escape_control_characters():
    from cli.main import one_line

    assert one_line("code 'a\nb\x00c' unknown") == "code 'a\\nb\\x00c' unknown"
    assert one_line("猪肉 批次 7") == "猪肉 批次 7"
    assert one_line("x\u200by") == "x\\u200by"


def test_dev_stdout_is_written_to_the_descriptor_not_replaced(tmp_path):
    # realpath('/dev/stdout') is the file stdout was redirected to: the rename replaced it
    # (an appended log lost its earlier lines), and a pipe's realpath cannot be opened
    import subprocess
    import sys

    code = (
        "from pathlib import Path; from cli.common import write_text_atomic; "
        "print('before', flush=True); write_text_atomic(Path('/dev/stdout'), 'out\\n')"
    )
    log = tmp_path / "log.txt"
    log.write_text("old\n")
    with open(log, "a") as f:
        subprocess.run([sys.executable, "-c", code], stdout=f, check=True, timeout=60)
    assert log.read_text() == "old\nbefore\nout\n"
    piped = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert piped.stdout == "before\nout\n"


def test_a_killed_writers_temporary_file_is_removed_by_the_next_write(tmp_path):
    # a SIGKILLed `prove --out b.json` left .b.json.tmpPID behind for good
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    stale = tmp_path / f".b.json.tmp{dead.stdout.strip()}"
    stale.write_text("{half")
    live = tmp_path / f".b.json.tmp{os.getppid()}"  # a running writer's file is kept
    live.write_text("{")
    other = tmp_path / ".c.json.tmp1"
    other.write_text("{")
    write_text_atomic(tmp_path / "b.json", "{}")
    assert (tmp_path / "b.json").read_text() == "{}"
    assert not stale.exists()
    assert live.exists()
    assert other.exists()


def test_printed_data_cannot_restyle_the_terminal_or_forge_a_line():
    # QA: an attribute name with a newline printed a fake `attribute` line, and ESC [2J
    # cleared the screen; a right-to-left override reordered a value
    from cli.common import console, safe

    assert safe("备注\nattribute 结论") == "备注\\u000aattribute 结论"
    assert safe("k\x1b[2J") == "k\\u001b[2J"
    assert safe("12.5\u202e") == "12.5\\u202e"
    assert safe("\x9b31m") == "\\u009b31m"  # a C1 control (one-byte CSI)
    assert safe("猪肉 批次 7 🥩") == "猪肉 批次 7 🥩"
    assert safe("two\nlines\tok", newlines=True) == "two\nlines\tok"
    with console.capture() as cap:
        console.print("a\x1b[2Jb\nc")
    assert cap.get() == "a\\u001b[2Jb\nc\n"


def test_a_missing_output_folder_is_not_created(tmp_path):
    # QA: `prove --out /nonexistent/dir/x.json` created /nonexistent/dir
    target = tmp_path / "no" / "such" / "x.json"
    with pytest.raises(OutputError, match=r"cannot write .*x.json: no folder .*such \(create"):
        write_text_atomic(target, "{}")
    assert not (tmp_path / "no").exists()


def test_a_newline_in_a_history_field_cannot_forge_a_line():
    # QA: a bizStep "urn:x:inspecting\n  #153 ... regulator ... recalling" printed a fake
    # line in `trace history` (the console keeps newlines of our own multi-line output)
    from cli.common import console, safe

    step = "urn:x:inspecting\n  #153    2026-03-02T10:00:00+08:00    regulator"
    with console.capture() as cap:
        console.print(f"  #7 {safe(step)}")
    assert len(cap.get().splitlines()) == 1


def test_two_options_naming_one_file_or_a_missing_folder_are_refused_before_writing(
    tmp_path, monkeypatch
):
    # QA: --note-out equal to --out replaced the checkpoint with its note, `prove --since
    # cp.json --out cp.json` replaced the auditor's checkpoint, and a checkpoint was
    # written before its note's missing folder failed the command
    from cli.common import distinct_outputs

    monkeypatch.chdir(tmp_path)
    (tmp_path / "cp.json").write_text("{}")
    with pytest.raises(InputError, match="--since and --out name the same file"):
        distinct_outputs([("--out", Path("cp.json"))], inputs=[("--since", tmp_path / "cp.json")])
    with pytest.raises(InputError, match="--out and --note-out name the same file"):
        distinct_outputs([("--out", Path("a.json")), ("--note-out", Path("./a.json"))])
    with pytest.raises(OutputError, match="no folder"):
        distinct_outputs([("--out", Path("a.json")), ("--note-out", Path("nowhere/a.note"))])
    distinct_outputs([("--out", Path("/dev/stdout")), ("--note-out", Path("/dev/stdout"))])
    distinct_outputs([("--out", Path("a.json")), ("--note-out", None)])


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ('{"w": 1e-400}', "has the number 1e-400, too small to record (it would read as 0)"),
        ('{"w": [2.5E+400]}', "has the number 2.5E+400, too large to record"),
        ("[" * 3000 + "]" * 3000, "nests arrays and objects too deeply to read"),
    ],
)
def test_json_a_record_cannot_hold_is_refused_by_name(tmp_path, text, needle) -> None:
    # QA-R: 1e-400 was signed as 0.0, 1e400 refused as "Infinity", and 1,000 levels of
    # nesting answered with Python's "maximum recursion depth exceeded"
    from cli.common import read_json_file

    p = tmp_path / "event.json"
    p.write_text(text)
    with pytest.raises(InputError, match=re.escape(needle)):
        read_json_file(p, "event file")
    p.write_text('{"w": 0.0e-5, "x": 1e-300, "y": -0.0}')
    assert read_json_file(p, "event file") == {"w": 0.0, "x": 1e-300, "y": -0.0}
