"""The slow tests' waiting helpers (tests/waiting.py) fail the way those tests rely on."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.waiting import sigkill, wait_for_new_pid, wait_until


def test_wait_until_returns_once_true_and_names_what_timed_out():
    calls = iter([False, False, True])
    wait_until(lambda: next(calls), 5, "the third call", poll=0.01)
    with pytest.raises(AssertionError, match="timed out after 0.05s waiting for a thing that never happens"):
        wait_until(lambda: False, 0.05, "a thing that never happens", poll=0.01)


def test_wait_until_fails_at_once_with_the_output_of_a_process_that_exited():
    proc = subprocess.Popen([sys.executable, "-c", "print('boom at startup')"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    proc.wait(timeout=30)
    with pytest.raises(AssertionError, match=r"process exited \(0\) before a checkpoint:\nboom at startup"):
        wait_until(lambda: False, 60, "a checkpoint", proc=proc)


def test_sigkill_reaps_a_child_and_wait_for_new_pid_skips_restart_errors():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    sigkill(proc)
    assert proc.returncode == -9
    answers = iter([ConnectionError(), 41, ConnectionError(), 42])

    def pid():
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert wait_for_new_pid(pid, 41, 5, "a restart", errors=(ConnectionError,)) == 42
