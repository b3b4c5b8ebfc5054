"""A fixed dataset for a generalisation probe that needs no RL: the same states under both splits.

:func:`collect_probe_data` runs a uniform random policy on an env built exactly as a training
config builds it (``EnvConfig(...).options("train")`` -> ``recore_dist.envs.make``), and renders
every state twice: under the env's own TRAIN-split interventions and under HELD-OUT-split
interventions of the same families. The held-out frames come from a second
:class:`~recore_dist.envs.interventions.Interventions` over the *same* physics and camera
(:meth:`DMCEnv.make_interventions` / :meth:`DMCEnv.render_under`), so positions, velocities and
any task-randomised model fields (targets, ...) are identical by construction; only colours,
backgrounds (and the camera, if on) differ. Each env episode draws one held-out sample at its
reset and keeps it for the whole episode (``dynamic=False``, the training configs' default).

Layout (:class:`ProbeData`): ``E`` segments of ``L`` rows, each ``[E, L, ...]``. A segment is one
simulator's stream starting at a reset (``is_first`` at row 0). If the env's episode is longer
than ``L`` the segment keeps its first ``L`` rows; if shorter, the stream continues into the next
episode with next-step autoreset (as :class:`~recore_dist.envs.vector.VectorEnv`). No env episode
spans two segments, so segment indices split *episodes* (:meth:`ProbeData.split_indices`). Rows
follow the replay convention (:class:`~recore_dist.data.SequenceChunk`): row ``t`` holds
``obs_t``, the reward that arrived with it (``0`` on ``is_first`` rows), its flags, and the action
drawn at it (drawn on every row as in :class:`~recore_dist.runtime.env_loop.EnvLoop`; on
``is_last`` rows and a segment's last row it is never applied).

Fields: per split ``image`` uint8 ``[E, L, H, W, 3]`` and ``depth`` float32 ``[E, L, H, W, 1]``;
shared by both splits (the same array objects) ``action`` float32 ``[E, L, A]``, ``reward``
float32 ``[E, L]``, ``is_first`` / ``is_last`` / ``is_terminal`` bool ``[E, L]``, ``proprio``
float32 ``[E, L, P]`` and ``state`` float64 ``[E, L, S]`` (``physics.get_state()``).

Cache: ``<cache_dir>/probe_v<FORMAT_VERSION>_<task>_<hash>.npz``, the hash over every argument
and ``FORMAT_VERSION``; plain ``np.savez`` arrays plus a JSON ``meta`` string, read with
``allow_pickle=False``. A cache file that cannot be read or does not match its arguments is
rebuilt (overwritten) with a ``RuntimeWarning`` naming the file and the reason.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
import warnings
import zipfile
from pathlib import Path
from typing import Any, Literal

import numpy as np

FORMAT_VERSION = 1
DEFAULT_CACHE_DIR = "runs/cache/probe_data"
SPLITS: tuple[str, ...] = ("train", "heldout")
SPLIT_FIELDS: tuple[str, ...] = ("image", "depth")
SHARED_FIELDS: tuple[str, ...] = ("action", "reward", "is_first", "is_last", "is_terminal", "proprio", "state")
DTYPES: dict[str, np.dtype] = {
    "image": np.dtype(np.uint8), "depth": np.dtype(np.float32), "action": np.dtype(np.float32),
    "reward": np.dtype(np.float32), "is_first": np.dtype(bool), "is_last": np.dtype(bool),
    "is_terminal": np.dtype(bool), "proprio": np.dtype(np.float32), "state": np.dtype(np.float64),
}
DYNAMIC = False  # one intervention sample per episode, as EnvConfig (training and evaluation) default
_ACTION_STREAM, _HELDOUT_STREAM = 1, 2  # SeedSequence words: random actions, held-out draws

Split = Literal["train", "heldout"]


@dataclasses.dataclass
class ProbeData:
    """``E`` segments x ``L`` rows of the same physical states under the train and held-out splits.

    Attributes:
        train: ``SPLIT_FIELDS`` rendered under train-split interventions plus ``SHARED_FIELDS``,
            each ``[E, L, ...]`` (see the module docstring for shapes and dtypes).
        heldout: the same keys; images (and depth) under held-out interventions, shared fields
            the very same arrays as in ``train``.
        meta: arguments, ``format_version``, counts (``env_episodes``, ``steps``) and intervention
            ids per segment (``intervention_ids[split][e]``: one id per env episode in segment e).
    """

    train: dict[str, np.ndarray]
    heldout: dict[str, np.ndarray]
    meta: dict[str, Any]

    def __post_init__(self) -> None:
        want = set(SPLIT_FIELDS + SHARED_FIELDS)
        for name, fields in (("train", self.train), ("heldout", self.heldout)):
            if set(fields) != want:
                raise ValueError(f"ProbeData.{name}: keys {sorted(fields)} != {sorted(want)}")
            for key, arr in fields.items():
                if arr.dtype != DTYPES[key] or arr.shape[:2] != self.train["reward"].shape:
                    raise ValueError(f"ProbeData.{name}[{key!r}]: {arr.dtype} {arr.shape}, expected "
                                     f"{DTYPES[key]} with leading [E, L] = {self.train['reward'].shape}")
        for key in SHARED_FIELDS:
            if self.train[key].shape != self.heldout[key].shape:
                raise ValueError(f"shared field {key!r}: train {self.train[key].shape} != "
                                 f"heldout {self.heldout[key].shape}")

    @property
    def num_episodes(self) -> int:
        """``E``, the number of segments."""
        return int(self.train["reward"].shape[0])

    @property
    def length(self) -> int:
        """``L``, rows per segment."""
        return int(self.train["reward"].shape[1])

    def split(self, name: Split) -> dict[str, np.ndarray]:
        """The fields of ``"train"`` or ``"heldout"``."""
        if name not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {name!r}")
        return self.train if name == "train" else self.heldout

    def split_indices(self, test_fraction: float = 0.25, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Disjoint segment indices ``(fit, test)`` (sorted int64) for both splits alike.

        Train a model on ``fit`` segments of the train split; measure its train-split error and
        its held-out-split error on the ``test`` segments (the same physical states, episodes it
        never saw). At least one segment goes to each side.
        """
        n = self.num_episodes
        if n < 2 or not 0.0 < test_fraction < 1.0:
            raise ValueError(f"split_indices needs >= 2 segments and 0 < test_fraction < 1; "
                             f"got {n} segments, test_fraction={test_fraction!r}")
        num_test = min(max(int(round(n * test_fraction)), 1), n - 1)
        order = np.random.default_rng(seed).permutation(n)
        return np.sort(order[num_test:]).astype(np.int64), np.sort(order[:num_test]).astype(np.int64)

    def windows(self, batch_size: int, length: int, rng: np.random.Generator, *,
                episodes: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``batch_size`` window positions ``(segment [B], start [B])`` drawn uniformly from
        ``episodes`` (default: all segments); they do not depend on the split."""
        if not 1 <= length <= self.length or batch_size < 1:
            raise ValueError(f"need batch_size >= 1 and 1 <= length <= {self.length}; "
                             f"got batch_size={batch_size!r}, length={length!r}")
        pool = np.arange(self.num_episodes) if episodes is None else np.asarray(episodes, np.int64)
        if pool.ndim != 1 or pool.size == 0 or pool.min() < 0 or pool.max() >= self.num_episodes:
            raise ValueError(f"episodes must be a non-empty 1-d index array into {self.num_episodes} "
                             f"segments, got {episodes!r}")
        segment = pool[rng.integers(0, pool.size, size=batch_size)]  # [B]
        start = rng.integers(0, self.length - length + 1, size=batch_size)  # [B]
        return segment, start

    def gather(self, split: Split, segment: np.ndarray, start: np.ndarray, length: int) -> dict[str, np.ndarray]:
        """Windows ``[B, T, ...]`` of ``split`` at the given positions (copies); ``is_first[:, 0]``
        is set, as :meth:`ReplayStore.sample <recore_dist.replay.ReplayStore.sample>` does."""
        fields = self.split(split)
        rows = np.asarray(start)[:, None] + np.arange(length)[None, :]  # [B, T]
        batch = {key: arr[np.asarray(segment)[:, None], rows] for key, arr in fields.items()}
        batch["is_first"][:, 0] = True
        return batch

    def sequences(self, split: Split, batch_size: int, length: int, rng: np.random.Generator, *,
                  episodes: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """``batch_size`` windows of ``length`` rows of ``split``, each field ``[B, T, ...]``.

        Two calls with generators in the same state draw the same windows, whatever the split, so
        ``sequences("train", ...)`` and ``sequences("heldout", ...)`` show the same states.
        """
        segment, start = self.windows(batch_size, length, rng, episodes=episodes)
        return self.gather(split, segment, start, length)


# -- collection ------------------------------------------------------------------------------
def collect_probe_data(
    *,
    env_name: str = "dmc:cartpole-swingup",
    interventions: str = "colour,background",
    difficulty: Literal["easy", "medium", "hard"] = "easy",
    size: int = 64,
    episodes: int = 20,
    length: int = 250,
    seed: int = 0,
    cache_dir: str | Path | None = DEFAULT_CACHE_DIR,
) -> ProbeData:
    """Collect (or load from the cache) ``episodes`` segments of ``length`` random-policy rows.

    Args:
        env_name: ``suite:task``; the env must offer ``make_interventions`` / ``render_under``
            (DMC envs do).
        interventions: comma-separated families (``colour``, ``camera``, ``background``).
        difficulty: intervention intensity and pool sizes (CoRe Table 7).
        size: image height and width.
        episodes: ``E``, segments (each starts at a reset).
        length: ``L``, rows per segment (cartpole-swingup episodes have 126 rows: the reset and
            1000 / 8 action-repeated steps).
        seed: seeds the env (as env 0 of a vector seeded ``seed``), actions and held-out draws.
        cache_dir: folder of the ``.npz`` cache; ``None`` disables caching.

    Returns:
        The :class:`ProbeData`. A damaged or mismatching cache file is rebuilt with a warning.
    """
    args = _check_args(env_name=env_name, interventions=interventions, difficulty=difficulty, size=size,
                       episodes=episodes, length=length, seed=seed)
    path = None if cache_dir is None else cache_path(Path(cache_dir), args)
    if path is not None and path.exists():
        try:
            return load_probe_data(path, expect=args)
        except (ValueError, OSError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            warnings.warn(f"probe-data cache {path} is unusable ({exc}); rebuilding it", RuntimeWarning,
                          stacklevel=2)
    data = _collect(args)
    if path is not None:
        save_probe_data(data, path)
    return data


def _check_args(**args: Any) -> dict[str, Any]:
    """Validated arguments (plus the fixed ``dynamic``), the cache key."""
    for key in ("size", "episodes", "length", "seed"):
        if isinstance(args[key], bool) or not isinstance(args[key], (int, np.integer)):
            raise TypeError(f"{key} must be an int, got {args[key]!r}")
        args[key] = int(args[key])
    if args["episodes"] < 1 or args["length"] < 2 or args["seed"] < 0:
        raise ValueError(f"need episodes >= 1, length >= 2, seed >= 0; got episodes={args['episodes']}, "
                         f"length={args['length']}, seed={args['seed']}")
    if not isinstance(args["env_name"], str) or not isinstance(args["interventions"], str):
        raise TypeError(f"env_name and interventions must be strings, got {args['env_name']!r}, "
                        f"{args['interventions']!r}")
    return {**args, "dynamic": DYNAMIC}


def _build_env(args: dict[str, Any]):
    """The train-split env as configs build it, and held-out interventions over its physics."""
    from recore_dist.envs import make
    from recore_dist.runtime.config import EnvConfig

    cfg = EnvConfig(name=args["env_name"], size=args["size"], depth=True, interventions=args["interventions"],
                    difficulty=args["difficulty"], dynamic=args["dynamic"])
    env = make(cfg.name, seed=args["seed"], **cfg.options("train"))
    if not (hasattr(env, "make_interventions") and hasattr(env, "render_under")):
        env.close()
        raise TypeError(f"{args['env_name']}: probe data re-renders each state under held-out "
                        f"interventions, which needs make_interventions / render_under; "
                        f"{type(env).__name__} has neither")
    if "depth" not in env.observation_space.spaces:
        env.close()
        raise ValueError(f"{args['env_name']}: no 'depth' observation (fields: {sorted(env.observation_space.spaces)})")
    return env, env.make_interventions("heldout")


class _Rows:
    """Preallocated ``[E, L, ...]`` arrays, filled one row at a time."""

    def __init__(self, env, episodes: int, length: int):
        space = env.observation_space.spaces
        shapes = {"image": space["image"].shape, "depth": space["depth"].shape, "action": env.action_space.shape,
                  "reward": (), "is_first": (), "is_last": (), "is_terminal": (),
                  "proprio": space["proprio"].shape, "state": env.physics.get_state().shape}
        self.shared = {k: np.zeros((episodes, length, *shapes[k]), DTYPES[k]) for k in SHARED_FIELDS}
        self.split = {s: {k: np.zeros((episodes, length, *shapes[k]), DTYPES[k]) for k in SPLIT_FIELDS}
                      for s in SPLITS}

    def write(self, e: int, t: int, obs: dict, held: dict, action: np.ndarray, reward: float, state) -> None:
        for key in SPLIT_FIELDS:
            self.split["train"][key][e, t] = obs[key]
            self.split["heldout"][key][e, t] = held[key]
        for key in ("is_first", "is_last", "is_terminal", "proprio"):
            self.shared[key][e, t] = obs[key]
        self.shared["action"][e, t], self.shared["reward"][e, t], self.shared["state"][e, t] = action, reward, state


def _collect(args: dict[str, Any]) -> ProbeData:
    """Run the random policy and render every state under both splits."""
    env, heldout = _build_env(args)
    camera = bool(env.interventions.config.camera)
    act_rng = np.random.default_rng([args["seed"], _ACTION_STREAM])
    held_rng = np.random.default_rng([args["seed"], _HELDOUT_STREAM])
    rows = _Rows(env, args["episodes"], args["length"])
    ids: dict[str, list[list[str]]] = {s: [] for s in SPLITS}
    started = time.perf_counter()
    try:
        for e in range(args["episodes"]):
            seg_ids = _collect_segment(env, heldout, rows, e, act_rng, held_rng, seed=args["seed"] if e == 0 else None)
            for s in SPLITS:
                ids[s].append(seg_ids[s])
    finally:
        env.close()
    seconds = time.perf_counter() - started
    train = {**rows.split["train"], **rows.shared}
    held = {**rows.split["heldout"], **rows.shared}
    if not camera and not np.array_equal(train["depth"], held["depth"]):
        raise RuntimeError(f"{args['env_name']}: depth differs between splits without a camera intervention "
                           f"({args['interventions']!r}); the held-out render is not of the same states")
    steps = int(np.sum(~rows.shared["is_first"]))
    meta = {**args, "format_version": FORMAT_VERSION, "action_repeat": int(getattr(env, "action_repeat", 1)),
            "env_episodes": sum(len(x) for x in ids["train"]), "rows": args["episodes"] * args["length"],
            "steps": steps, "collect_seconds": seconds, "intervention_ids": ids}
    return ProbeData(train=train, heldout=held, meta=meta)


def _collect_segment(env, heldout, rows: _Rows, e: int, act_rng: np.random.Generator,
                     held_rng: np.random.Generator, *, seed: int | None) -> dict[str, list[str]]:
    """Fill segment ``e`` from a reset; returns the intervention ids of its env episodes."""
    ids: dict[str, list[str]] = {s: [] for s in SPLITS}

    def reset() -> dict:
        obs, info = env.reset(seed=seed) if not ids["train"] else env.reset()
        heldout.reset(held_rng)
        ids["train"].append(info["intervention_id"])
        ids["heldout"].append(heldout.id)
        return obs

    obs, reward = reset(), 0.0
    for t in range(rows.shared["reward"].shape[1]):
        action = act_rng.uniform(-1.0, 1.0, env.action_space.shape).astype(np.float32)  # [A]
        rows.write(e, t, obs, env.render_under(heldout), action, reward, env.physics.get_state())
        if t == rows.shared["reward"].shape[1] - 1:
            break
        if obs["is_last"]:  # next-step autoreset: the action of an is_last row is never applied
            obs, reward = reset(), 0.0
        else:
            obs, reward, *_ = env.step(action)
            heldout.step(held_rng)
    return ids


# -- cache -----------------------------------------------------------------------------------
def cache_path(cache_dir: Path, args: dict[str, Any]) -> Path:
    """``cache_dir / probe_v<FORMAT_VERSION>_<task>_<hash of args and FORMAT_VERSION>.npz``."""
    key = json.dumps({"format_version": FORMAT_VERSION, **args}, sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    task = "".join(c if c.isalnum() or c in "-_" else "-" for c in str(args["env_name"]))
    return Path(cache_dir) / f"probe_v{FORMAT_VERSION}_{task}_{digest}.npz"


def save_probe_data(data: ProbeData, path: Path) -> Path:
    """Write ``data`` to ``path`` atomically (a temporary file, then a rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {f"{s}.{k}": data.split(s)[k] for s in SPLITS for k in SPLIT_FIELDS}
    arrays.update({f"shared.{k}": data.train[k] for k in SHARED_FIELDS})
    arrays["meta"] = np.array(json.dumps(data.meta, sort_keys=True))  # 0-d unicode, no pickle
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def load_probe_data(path: Path, *, expect: dict[str, Any] | None = None) -> ProbeData:
    """Read a cache file (``allow_pickle=False``).

    Raises:
        ValueError: naming the file, if it is not a probe-data file of this ``FORMAT_VERSION``, or
            its arguments differ from ``expect``, or its arrays have the wrong keys, dtypes or shapes.
        OSError, zipfile.BadZipFile, EOFError: if the file cannot be read at all.
    """
    with np.load(path, allow_pickle=False) as npz:
        want = {f"{s}.{k}" for s in SPLITS for k in SPLIT_FIELDS} | {f"shared.{k}" for k in SHARED_FIELDS} | {"meta"}
        if set(npz.files) != want:
            raise ValueError(f"{path}: arrays {sorted(npz.files)}, expected {sorted(want)}")
        meta = json.loads(str(npz["meta"]))
        if meta.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{path}: format_version {meta.get('format_version')!r} != {FORMAT_VERSION}")
        if expect is not None and any(meta.get(k) != v for k, v in expect.items()):
            got = {k: meta.get(k) for k in expect}
            raise ValueError(f"{path}: made with {got}, expected {expect}")
        shared = {k: npz[f"shared.{k}"] for k in SHARED_FIELDS}
        split = {s: {k: npz[f"{s}.{k}"] for k in SPLIT_FIELDS} for s in SPLITS}
    try:
        data = ProbeData(train={**split["train"], **shared}, heldout={**split["heldout"], **shared}, meta=meta)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from exc
    if (data.num_episodes, data.length) != (meta.get("episodes"), meta.get("length")):
        raise ValueError(f"{path}: arrays hold [{data.num_episodes}, {data.length}] rows, meta says "
                         f"[{meta.get('episodes')}, {meta.get('length')}]")
    return data
