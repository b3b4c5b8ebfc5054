"""The chaos tools' parts: every malformed kind the hostile client forges is refused by a real
shard and changes nothing; the fault injector kills a real process. The run itself:
``tests/test_bench_chaos.py`` (slow)."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from recore_dist.runtime.chaos import MALFORMED_KINDS, FaultInjector, HostileClient
from tests.test_replay import stream
from tests.test_replay_log import CHUNK, _config
from recore_dist.data import encode_chunks
from recore_dist.replay.shard import ReplayShard


@pytest.mark.parametrize("kind", MALFORMED_KINDS)
def test_every_malformed_kind_is_refused_and_changes_nothing(tmp_path, kind):
    shard = ReplayShard(_config(tmp_path))
    real = stream(0, 3, CHUNK)
    for chunk in real:
        shard.insert(encode_chunks([chunk]))
    client = HostileClient([shard], real[0], seed=1, insert=lambda i, p: shard.insert(p))
    before = shard.stats()
    for _ in range(3):
        client.send_one(kind)
    after = shard.stats()
    assert client.accepted[kind] == 0 and client.refused[kind] == 3, client.first_error
    valid = client.valid_acked[0] if kind == "duplicate_seq" else 0  # its valid chunks are acknowledged
    assert after["replay/chunks"] == before["replay/chunks"] + valid
    assert after["replay/rejected_payloads"] + after["replay/rejected_chunks"] == \
        before["replay/rejected_payloads"] + before["replay/rejected_chunks"] + 3


class _Job:
    """What FaultInjector reads from an orchestrator: runner pids."""

    def __init__(self, pid: int):
        self.runner_pids, self.learner_pids, self.shards = {0: pid}, {}, []


def test_fault_injector_sigkills_on_its_seeded_schedule():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    injector = FaultInjector(_Job(proc.pid), seed=3, every=(0.1, 0.2), kinds=("runner",))
    injector.start()
    assert proc.wait(timeout=10) == -9
    time.sleep(0.5)
    injector.stop()
    injector.join()
    assert injector.faults[0]["kind"] == "runner" and injector.faults[0]["pid"] == proc.pid
    assert all("already gone" in e for e in injector.errors)
