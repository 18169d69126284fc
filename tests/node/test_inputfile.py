"""``node.inputfile.read_input``: every input file is read whole, but never past its bound."""

import os
from pathlib import Path

import pytest

from node.errors import ConfigError, InputError
from node.inputfile import read_input


def test_a_file_within_the_limit_is_read_whole(tmp_path):
    f = tmp_path / "ev.json"
    f.write_bytes(b"x" * 100)
    assert read_input(f, "event", limit=100) == b"x" * 100


def test_a_regular_file_over_the_limit_is_refused_by_its_size(tmp_path):
    f = tmp_path / "big.json"
    with open(f, "wb") as out:
        out.truncate(10**9)  # sparse: refused from its size alone, nothing is read
    with pytest.raises(InputError, match=r"big.json: envelope is larger than 1,000 bytes"):
        read_input(f, "envelope", limit=1000)


def test_a_stream_is_read_no_further_than_the_limit(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    pid = os.fork()
    if pid == 0:  # the writer: more than the limit, then it is done
        try:
            with open(fifo, "wb") as w:
                w.write(b"y" * 5000)
        finally:
            os._exit(0)
    try:
        with pytest.raises(InputError, match="pipe: bundle is larger than 4,096 bytes"):
            read_input(fifo, "bundle", limit=4096)
    finally:
        os.waitpid(pid, 0)
    with pytest.raises(InputError, match="is larger than"):
        read_input(Path("/dev/zero"), "event", limit=1 << 20)


def test_missing_and_unreadable_files_name_the_path_in_the_callers_error(tmp_path):
    with pytest.raises(ConfigError, match=r"nope.json: no such genesis file"):
        read_input(tmp_path / "nope.json", "genesis", error=ConfigError)
    with pytest.raises(InputError, match=r"nope.json: no such event file$"):  # (QA: "file file")
        read_input(tmp_path / "nope.json", "event file")
    with pytest.raises(InputError, match=r": cannot read event \(Is a directory\)"):
        read_input(tmp_path, "event")
