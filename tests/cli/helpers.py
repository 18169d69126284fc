"""Run the real `suyuan` console script in a subprocess, as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

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
