"""Node processes of a local testnet: start, identify, signal and stop them, by PID.

Every signal goes to one recorded PID, and only after ``is_ours`` has checked through
``/proc/PID/cmdline`` that the process is still ``suyuan node start --config CONFIG`` for
that node's config (a PID may have been reused); or, for a testnet folder moved while it ran
(its command line keeps the old path), ``--config .../NAME`` with the config's name and the
node's data folder (``DIR/NAME-without-.toml``, the testnet's layout) open, as
``/proc/PID/fd`` shows it at its new path. Linux only (``/proc``).

Processes are started with ``start_new_session=True`` so a terminal's Ctrl-C does not reach
them, with stdout and stderr appended to the node's log. Children of this process are
reaped (``os.waitpid(WNOHANG)``) whenever their state is read, so a killed node never
lingers as a zombie that looks alive.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from node.errors import ConfigError

_POLL_S = 0.05
_EXEC_WAIT_S = 5.0


def suyuan_script() -> Path:
    """The ``suyuan`` console script of the running interpreter's environment."""
    script = Path(sys.executable).with_name("suyuan")
    if not script.exists():
        raise ConfigError(f"{script}: the suyuan console script is not installed here")
    return script


def node_command(config: Path, *, resync: bool = False) -> list[str]:
    return [
        str(suyuan_script()), "node", "start", "--config", str(config),
        *(["--resync"] if resync else []),
    ]  # fmt: skip


def start_node(config: Path, log: Path, cwd: Path, *, resync: bool = False) -> int:
    """Start ``suyuan node start --config CONFIG [--resync]`` in the background; returns
    its PID."""
    log.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with log.open("ab") as out:
        out.write(f"--- suyuan testnet: starting node ({time.ctime()})\n".encode())
        out.flush()
        proc = subprocess.Popen(
            node_command(config, resync=resync),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=env,
            start_new_session=True,
            close_fds=True,
        )
    # Until the child has exec'd, /proc/PID/cmdline is still ours (the parent's): wait for
    # the node's command line, so that is_ours() is right from the start.
    try:
        deadline = time.monotonic() + _EXEC_WAIT_S
        while proc.poll() is None and time.monotonic() < deadline:
            args = _cmdline(proc.pid)
            if args and _matches(proc.pid, args, config):
                break
            time.sleep(0.005)
    except BaseException:  # (Ctrl-C before the caller has the PID: nothing may survive)
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            proc.kill()
            proc.wait(5)
        raise
    return proc.pid


_exit_codes: dict[int, int] = {}  # our children's exit codes, as ``_reap`` collected them


def _reap(pid: int) -> bool:
    """Collect ``pid``'s exit status if it is our child and has exited; False if it is not
    (or no longer) our child."""
    if pid in _exit_codes:
        return True
    try:
        done, status = os.waitpid(pid, os.WNOHANG)
    except (ChildProcessError, OSError):
        return False
    if done == pid:
        _exit_codes[pid] = os.waitstatus_to_exitcode(status)
    return True


def exit_code(pid: int, wait_s: float = 0.0) -> int | None:
    """The exit code of ``pid`` if it is a child of this process that has exited. With
    ``wait_s``, a child that is still exiting is waited for, that long at most: its command
    line is gone a moment before it can be reaped (CI: read as "no exit code", exit 5)."""
    deadline = time.monotonic() + wait_s
    for _ in range(int(wait_s / _REAP_POLL_S) + 1):
        if not _reap(pid) or pid in _exit_codes or time.monotonic() >= deadline:
            break
        time.sleep(_REAP_POLL_S)
    return _exit_codes.get(pid)


_REAP_POLL_S = 0.01


def _cmdline(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return [a.decode("utf-8", "replace") for a in raw.split(b"\0") if a]


def proc_state(pid: int) -> str | None:
    """The one-letter state from ``/proc/PID/stat`` (R, S, T, Z...), None if gone."""
    _reap(pid)
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    # "pid (comm) S ...": comm may hold spaces and parentheses; the state follows the last ')'
    rest = stat.rpartition(")")[2].split()
    return rest[0] if rest else None


def _matches(pid: int, args: list[str], config: Path) -> bool:
    try:
        i = args.index("--config")
    except ValueError:
        return False
    if i + 1 >= len(args) or "start" not in args[:i]:
        return False
    given = args[i + 1]
    if given == str(config):
        return True
    # (QA: a testnet folder moved while it ran: status said "stopped", down stopped nothing)
    return Path(given).name == config.name and _holds_open(pid, _data_dir(config))


def _data_dir(config: Path) -> Path:
    """A testnet node's data folder: ``DIR/node{i}`` for ``DIR/configs/node{i}.toml``."""
    return config.parent.parent / config.stem


def _holds_open(pid: int, folder: Path) -> bool:
    """Whether ``pid`` has ``folder`` or a file directly in it open (a node holds its data
    folder and its ``node.lock``); the kernel names open files by their current path."""
    want = str(folder)
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds[:4096]:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target == want or os.path.dirname(target) == want:
            return True
    return False


def is_ours(pid: int | None, config: Path) -> bool:
    """True when ``pid`` is a live (not zombie) ``suyuan node start --config CONFIG``."""
    if pid is None or pid <= 0:
        return False
    state = proc_state(pid)
    if state is None or state in ("Z", "X"):
        return False
    args = _cmdline(pid)
    return args is not None and _matches(pid, args, config)


def is_gone(pid: int, config: Path) -> bool:
    """True once ``pid`` has exited (or is a zombie, or is now some other program).

    A process in the middle of exiting has an empty cmdline but is not gone yet.
    """
    state = proc_state(pid)
    if state is None or state in ("Z", "X"):
        return True
    args = _cmdline(pid)
    return bool(args) and args is not None and not _matches(pid, args, config)


def is_paused(pid: int | None) -> bool:
    """True when ``pid`` is stopped (SIGSTOP)."""
    return pid is not None and proc_state(pid) in ("T", "t")


def send(pid: int, config: Path, sig: signal.Signals) -> bool:
    """Send ``sig`` to ``pid`` if it is still our node; False when it was not (or is gone)."""
    if not is_ours(pid, config):
        return False
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return False
    return True


def wait_gone(pid: int, config: Path, timeout: float) -> bool:
    """Poll until ``pid`` has exited (``is_gone``), at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        if is_gone(pid, config):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(_POLL_S)


def stop(pid: int, config: Path, timeout: float = 10.0) -> bool:
    """SIGTERM (and SIGCONT, in case it is paused), wait up to ``timeout``, then SIGKILL.

    Returns True when the process is gone; False only if it survived SIGKILL for 5 s.
    """
    if not send(pid, config, signal.SIGTERM):
        # not (or no longer) our node: gone, another program, or one exiting by itself
        # (its command line already empty): wait for the last
        return wait_gone(pid, config, timeout)
    send(pid, config, signal.SIGCONT)  # a stopped process acts on SIGTERM only once resumed
    if wait_gone(pid, config, timeout):
        return True
    send(pid, config, signal.SIGKILL)
    return wait_gone(pid, config, 5.0)


def stop_many(procs: list[tuple[int, Path]], timeout: float = 10.0) -> list[int]:
    """Stop several nodes at once: SIGTERM (+SIGCONT) to all, one shared deadline, SIGKILL.

    ``procs`` holds (pid, config) pairs. Returns the PIDs still alive afterwards (normally
    none); PIDs that are not (or no longer) our nodes are left alone.
    """
    # every one not gone yet, also a node exiting by itself (no command line left, so not
    # signalled): the caller counts on all of them having ended on return
    live = [(pid, cfg) for pid, cfg in procs if not is_gone(pid, cfg)]
    for pid, cfg in live:
        send(pid, cfg, signal.SIGTERM)
        send(pid, cfg, signal.SIGCONT)
    deadline = time.monotonic() + timeout
    while live and time.monotonic() < deadline:
        live = [(pid, cfg) for pid, cfg in live if not is_gone(pid, cfg)]
        if live:
            time.sleep(_POLL_S)
    for pid, cfg in live:
        send(pid, cfg, signal.SIGKILL)
    return [pid for pid, cfg in live if not wait_gone(pid, cfg, 5.0)]


def log_tail(log: Path, lines: int = 20) -> str:
    """The last ``lines`` lines of a node log ("" when there is none)."""
    try:
        with log.open("rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            data = f.read()
    except OSError:
        return ""
    return "\n".join(data.decode("utf-8", "replace").splitlines()[-lines:])
