"""``recore-dist bench replay``: replay-service MB/s against raw Ray actor-call transport.

The same traffic both times: ``producers`` actors each push msgpack payloads of ``chunks_per_call``
chunks (64 rows of 64x64x3 uint8 frames + 32x32 depth, action, reward, flags: the real chunk
shapes), with ``in_flight`` calls outstanding each, while one consumer samples ``[B, T]`` batches.

- baseline: a sink actor that answers ``insert`` with the payload's length and ``sample`` with a
  ready-made payload of the size of a real encoded batch: pure Ray transport of those bytes;
- service: a ``ReplayShard`` actor (decode + validate every chunk, store, rate limiter, gather
  windows, encode the batch) behind a ``ReplayClient`` (the consumer decodes every batch).

MB/s counts inserted plus sampled payload bytes. Repeats are interleaved; medians reported.
Target: service >= 0.7 of the baseline.
"""

from __future__ import annotations

import statistics
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np


def synthetic_chunks(count: int, *, length: int = 64, size: int = 64, runner: int = 0, seq0: int = 0):
    from recore_dist.data import SequenceChunk

    rng = np.random.default_rng(runner)
    out = []
    for k in range(count):
        first = np.zeros(length, bool)
        first[0] = k == 0
        out.append(SequenceChunk(
            obs={"image": rng.integers(0, 255, (length, size, size, 3), dtype=np.uint8),
                 "depth": rng.random((length, size // 2, size // 2, 1), dtype=np.float32)},
            action=rng.uniform(-1, 1, (length, 1)).astype(np.float32),
            reward=np.where(first, 0, rng.random(length)).astype(np.float32),
            is_first=first, is_last=np.zeros(length, bool), is_terminal=np.zeros(length, bool),
            policy_version=0, env_name="bench:replay", intervention_id="none", split="train",
            runner_id=runner, seq=seq0 + k, env_index=k % 4))
    return out


class _Sink:
    """Raw transport: accepts payloads, returns a pre-made sample payload."""

    def __init__(self, sample_bytes: int):
        self.blob = np.random.default_rng(0).integers(0, 255, sample_bytes, dtype=np.uint8).tobytes()

    def insert(self, payload: bytes) -> dict[str, int]:
        return {"bytes": len(payload)}

    def sample(self, batch_size: int, timeout: float | None = None) -> bytes:
        return self.blob

    def size(self) -> int:
        return 1


class _Producer:
    def __init__(self, payloads: list[bytes], in_flight: int):
        self.payloads, self.in_flight = payloads, in_flight

    def push(self, target, calls: int) -> float:
        import ray

        pending, sent, start = [], 0, time.perf_counter()
        for i in range(calls):
            pending.append(target.insert.remote(self.payloads[i % len(self.payloads)]))
            sent += len(self.payloads[i % len(self.payloads)])
            if len(pending) >= self.in_flight:
                ray.get(pending.pop(0))
        ray.get(pending)
        return sent / (time.perf_counter() - start)


def _measure(target, producers, calls: int, batch_size: int, decode: bool) -> dict[str, float]:
    import ray

    from recore_dist.data.batch import decode_batch

    received = {"bytes": 0, "batches": 0}
    stop = threading.Event()

    def consume() -> None:
        while not stop.is_set():
            payload = ray.get(target.sample.remote(batch_size))
            if decode:
                decode_batch(payload)
            received["bytes"] += len(payload)
            received["batches"] += 1

    start = time.perf_counter()
    consumer = threading.Thread(target=consume)
    consumer.start()
    ray.get([p.push.remote(target, calls) for p in producers])
    seconds = time.perf_counter() - start
    stop.set()
    consumer.join()
    return {"seconds": seconds, "sampled_mb": received["bytes"] / 1e6, "batches": received["batches"]}


def run_bench(*, producers: int = 2, calls: int = 40, chunks_per_call: int = 4, in_flight: int = 4,
              batch_size: int = 16, length: int = 64, repeats: int = 3, num_cpus: int = 6) -> dict[str, Any]:
    import ray

    from recore_dist.data import encode_chunks
    from recore_dist.data.batch import encode_batch
    from recore_dist.replay.shard import ShardConfig, remote_shard

    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)
    try:
        # One payload per call: the shards refuse re-sent sequence numbers (a resent chunk is
        # acknowledged as already held, not stored again), so every call carries new chunks.
        payloads = [[encode_chunks(synthetic_chunks(chunks_per_call, runner=r, seq0=k * chunks_per_call))
                     for k in range(calls)] for r in range(producers)]
        warm_up = encode_chunks(synthetic_chunks(1, runner=producers))
        insert_mb = calls * sum(len(p) for p in payloads[0]) / len(payloads[0]) / 1e6  # per producer
        example = synthetic_chunks(1)[0]
        sample_bytes = len(encode_batch({k: np.repeat(v[None], batch_size, 0) for k, v in
                                         [*example.obs.items(), ("action", example.action), ("reward", example.reward),
                                          ("is_first", example.is_first), ("is_last", example.is_last),
                                          ("is_terminal", example.is_terminal)]}))
        prods = [ray.remote(_Producer).options(num_cpus=1).remote(payloads[r], in_flight) for r in range(producers)]
        rows = {"raw": [], "service": []}
        extra: dict[str, Any] = {}
        for _ in range(repeats):
            sink = ray.remote(_Sink).options(num_cpus=0, max_concurrency=8).remote(sample_bytes)
            out = _measure(sink, prods, calls, batch_size, decode=False)
            rows["raw"].append((producers * insert_mb + out["sampled_mb"]) / out["seconds"])
            ray.kill(sink)
            shard = remote_shard(ShardConfig(capacity=200_000, length=length, chunk_length=64, ratio=float("inf"),
                                             min_size=0, max_sample=batch_size, max_insert_chunks=chunks_per_call), 0)
            ray.get(shard.insert.remote(warm_up))  # the sampler needs one window before the clock starts
            out = _measure(shard, prods, calls, batch_size, decode=True)
            rows["service"].append((producers * insert_mb + out["sampled_mb"]) / out["seconds"])
            extra = {"service_batches": out["batches"], "stored_chunks": ray.get(shard.stats.remote())["replay/inserted"]}
            ray.kill(shard)
        result = {"producers": producers, "calls_per_producer": calls, "chunks_per_call": chunks_per_call,
                  "in_flight": in_flight, "payload_mb": sum(len(p) for p in payloads[0]) / len(payloads[0]) / 1e6,
                  "sample_mb": sample_bytes / 1e6, "batch": [batch_size, length], "repeats": repeats,
                  "raw_mb_per_second": statistics.median(rows["raw"]),
                  "service_mb_per_second": statistics.median(rows["service"]),
                  "raw_all": rows["raw"], "service_all": rows["service"], **extra}
        result["ratio"] = result["service_mb_per_second"] / result["raw_mb_per_second"]
        result["target_met"] = result["ratio"] >= 0.7
        return result
    finally:
        if started:
            ray.shutdown()


def format_table(r: dict[str, Any]) -> str:
    return "\n".join([
        f"{r['producers']} producers x {r['calls_per_producer']} calls of {r['chunks_per_call']} chunks "
        f"({r['payload_mb']:.2f} MB each, {r['in_flight']} in flight) + 1 consumer sampling "
        f"{r['batch'][0]}x{r['batch'][1]} batches ({r['sample_mb']:.2f} MB each); {r['repeats']} interleaved repeats",
        f"{'transport':<52}{'MB/s':>10}",
        f"{'raw Ray actor calls, same payloads (baseline)':<52}{r['raw_mb_per_second']:>10.1f}",
        f"{'replay service (decode, validate, store, sample, encode)':<52}{r['service_mb_per_second']:>10.1f}",
        f"ratio {r['ratio']:.2f} (target >= 0.7: {'met' if r['target_met'] else 'NOT met'})"])


LOG_POLICIES = ("off", "none", "interval", "every")


def run_log_bench(*, calls: int = 200, chunks_per_call: int = 4, repeats: int = 3, directory: str | None = None,
                  interval_s: float = 1.0) -> dict[str, Any]:
    """``bench replay --log``: the write-ahead log's cost. One ``ReplayShard`` in this process
    (decode, validate, log append, store: the actor's insert path without Ray's transport) takes
    ``calls`` inserts of ``chunks_per_call`` real 64x64 msgpack chunks, with the log off and with
    each fsync policy; policies interleave per repeat (medians). The shard's folder is on
    ``directory`` (default: a temporary folder under ``runs/``, the disk a run's logdir uses)."""
    import shutil
    import tempfile

    from recore_dist.data import encode_chunks
    from recore_dist.replay.shard import ReplayShard, ShardConfig

    Path("runs").mkdir(exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="bench-replay-log-", dir=directory or "runs"))
    payloads = [encode_chunks(synthetic_chunks(chunks_per_call, runner=0, seq0=k * chunks_per_call))
                for k in range(calls)]
    mb = sum(len(p) for p in payloads) / 1e6
    rows: dict[str, list[dict[str, float]]] = {p: [] for p in LOG_POLICIES}
    try:
        for rep in range(repeats):
            for policy in LOG_POLICIES:
                folder = root / f"{policy}-{rep}"
                shard = ReplayShard(ShardConfig(
                    capacity=calls * chunks_per_call * 64 + 64, length=64, chunk_length=64, ratio=float("inf"),
                    min_size=0, max_sample=16, max_insert_chunks=chunks_per_call, checkpoint_dir=str(folder),
                    log=policy != "off", log_fsync="none" if policy == "off" else policy, log_interval_s=interval_s))
                start = time.perf_counter()
                for payload in payloads:
                    shard.insert(payload)
                seconds = time.perf_counter() - start
                fsyncs = shard.log.appended["fsyncs"] if shard.log is not None else 0
                shard.close()
                rows[policy].append({"inserts_per_second": calls / seconds, "mb_per_second": mb / seconds,
                                     "fsyncs": fsyncs})
                shutil.rmtree(folder, ignore_errors=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    med = {p: {k: statistics.median(r[k] for r in rows[p]) for k in rows[p][0]} for p in LOG_POLICIES}
    for p in LOG_POLICIES:
        med[p]["vs_off"] = med[p]["mb_per_second"] / med["off"]["mb_per_second"]
    return {"calls": calls, "chunks_per_call": chunks_per_call, "payload_mb": mb / calls, "repeats": repeats,
            "interval_s": interval_s, "directory": directory or "runs/", "policies": med}


def format_log_table(r: dict[str, Any]) -> str:
    lines = [f"replay shard inserts ({r['calls']} calls of {r['chunks_per_call']} chunks, {r['payload_mb']:.2f} MB "
             f"each), write-ahead log off vs each fsync policy; {r['repeats']} interleaved repeats (medians), "
             f"folder on {r['directory']}",
             f"{'log':<22}{'inserts/s':>10}{'MB/s':>9}{'vs off':>8}{'fsyncs':>8}"]
    for policy, row in r["policies"].items():
        name = {"off": "off (baseline)", "interval": f"interval ({r['interval_s']:g} s)"}.get(policy, policy)
        lines.append(f"{name:<22}{row['inserts_per_second']:>10.1f}{row['mb_per_second']:>9.1f}"
                     f"{row['vs_off']:>7.2f}x{row['fsyncs']:>8.0f}")
    return "\n".join(lines)
