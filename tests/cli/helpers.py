"""Run the real `suyuan` console script in a subprocess, as a user would; a stub client for
unit tests of a command."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Self

SUYUAN = str(Path(sys.executable).with_name("suyuan"))


def suyuan(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 60):
    full_env = {**os.environ, **(env or {})}
    full_env.pop("SUYUAN_PASSPHRASE", None) if env is None else None
    return subprocess.run(
        [SUYUAN, *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )


class StubClient:
    """A ``LedgerClient`` stand-in for a CLI command's unit test: a context manager that
    takes any arguments; subclasses add the calls the command makes."""

    def __init__(self, *a: Any, **kw: Any) -> None:
        pass

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        pass
