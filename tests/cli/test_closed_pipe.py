"""A closed output pipe (`suyuan ... | head -1`) through the real console script."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.cli.helpers import SUYUAN


@pytest.mark.parametrize("args", [["--help"], ["record", "--help"], ["trace", "--help"]])
def test_closed_pipe_exits_141_quietly(args, tmp_path):
    """`suyuan --help | head -1`: the reader is gone before the output is written. Exit 141
    (as if by SIGPIPE), no traceback; rich's own exit 1 is a rule refusal's code."""
    read, write = os.pipe()
    os.close(read)  # every write to ``write`` fails with EPIPE
    try:
        r = subprocess.run(
            [SUYUAN, *args],
            stdout=write,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            cwd=tmp_path,
            timeout=60,
            check=False,
        )
    finally:
        os.close(write)
    assert r.returncode == 141, r.stderr
    assert r.stderr == b""
