"""The slow tests' waiting and killing: poll a condition until a deadline, SIGKILL a process,
wait for an actor to come back with a new pid."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable


def wait_until(predicate: Callable[[], bool], timeout: float, what: str, *, poll: float = 0.5,
               proc: subprocess.Popen | None = None) -> None:
    """Poll ``predicate`` until it is true; fail with ``what`` after ``timeout`` seconds, or at
    once with the output's tail if ``proc`` (whose output is being waited on) exits first."""
    deadline = time.time() + timeout
    while not predicate():
        if proc is not None and proc.poll() is not None:
            out = proc.stdout.read() if proc.stdout else ""
            out = out.decode() if isinstance(out, bytes) else out
            raise AssertionError(f"process exited ({proc.returncode}) before {what}:\n{out[-3000:]}")
        if time.time() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(poll)


def sigkill(target: int | subprocess.Popen) -> None:
    """SIGKILL a pid or a child process (and reap the child)."""
    if isinstance(target, subprocess.Popen):
        target.send_signal(signal.SIGKILL)
        target.wait(timeout=30)
    else:
        os.kill(target, signal.SIGKILL)


def wait_for_new_pid(get_pid: Callable[[], int], old: int, timeout: float, what: str,
                     errors: tuple[type[BaseException], ...] = ()) -> int:
    """Wait until ``get_pid()`` answers with a pid other than ``old`` (a restarted actor);
    ``errors`` raised while it restarts count as not yet."""
    seen: list[int] = []

    def restarted() -> bool:
        try:
            seen.append(get_pid())
        except errors:
            return False
        return seen[-1] != old

    wait_until(restarted, timeout, what)
    return seen[-1]
