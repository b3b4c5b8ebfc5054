"""``recore-dist bench objectives``: every world-model objective on the same replay, no RL.

One dataset (:mod:`recore_dist.bench.probe_data`): a uniform random policy on the distracted
cartpole preset (``dmc:cartpole-swingup``, colour + background, train split), every state also
rendered under the held-out split; collected once and cached. Its episodes are split into *fit*
episodes (what the models train on, train-split frames only) and *test* episodes.

Each objective then trains ``--updates`` learner updates (world model and actor-critic, the
default learner of the preset at ``--size``, B x T windows of the fit episodes) in a fresh
process with the same torch threads, and reports:

- **seconds per update** (median after two warm-ups) and the autocast dtype;
- **clip fraction**: share of world-model steps whose gradient norm exceeded the clip, counted
  after the first 100 updates;
- **gradient shares**: every ``grad_every`` updates the norm of each loss term's gradient with
  respect to the shared encoder output (``Learner.term_gradients``), as a share of their sum,
  averaged over the diagnostic steps after the first 100 updates;
- **self-supervised accuracy** (top-1 of InfoNCE, mean over the last 10% of updates) beside its
  chance level (1 / candidates), or HRSSM's normalised latent reconstruction error at the start
  and end of training;
- **generalisation probe** on the test episodes, the same physical states under both splits,
  frames filtered by the posterior (no augmentation or masking):
  *reward error*: the model's own reward head, MSE normalised by the reward variance;
  *depth error*: a ridge-regression probe from the posterior feature to 16 x 16 depth, fitted on
  the fit episodes' train-split features (penalty picked on a held-back quarter of them), MSE
  over the per-pixel variance across frames. ``probe_ratio`` is held-out / train
  error for each: 1 means the representation predicts as well under unseen colours and
  backgrounds (the seeds' claim in miniature); more means it relies on them.

With ``--env nav:pointgoal`` the dataset is a random policy on navigation's train and held-out
scenes (:mod:`recore_dist.bench.nav_probe`), every objective encodes ``[image, proprio]`` (the
goal enters through proprio) and the probe is the *task-information probe*: a ridge regression
from the posterior feature to the goal's distance and bearing (sin, cos), fitted on train-scene
frames and scored by R^2 on held-out-scene frames (``goal_probe_r2``; ``goal_probe_r2_train`` on
train-scene segments the model never saw).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from typing import Any

import numpy as np

METHODS: tuple[str, ...] = ("recore", "core", "hrssm", "coral", "recon")
BATCH_FIELDS: tuple[str, ...] = ("image", "depth", "proprio", "action", "reward", "is_first", "is_last",
                                 "is_terminal")
SSL_METRIC = {"recore": "wm/contrastive_acc", "core": "wm/contrastive_acc", "coral": "wm/contrastive_acc_image"}
SSL_CHANCE = {"recore": "wm/contrastive_chance", "core": "wm/contrastive_chance",
              "coral": "wm/contrastive_chance_image"}
WARMUP_UPDATES = 100  # clip fraction and gradient shares are counted after these (issue 13)
PROBE_SIDE = 16  # depth probe resolution
CONTROL_ENV, NAV_ENV = "dmc:cartpole-swingup", "nav:pointgoal"  # the two datasets
RIDGES = (1e-3, 1e-2, 1e-1, 1.0, 10.0)  # penalties (x rows, on standardised features), picked on held-back fit episodes


# -- one objective, in its own process -------------------------------------------------------------
def _learner(method: str, size: str, batch_size: int, length: int, grad_every: int, precision: str,
             threads: int, spaces_meta: dict[str, Any], overrides: list[str], inputs: tuple[str, ...] = ("image",)):
    import torch

    from recore_dist import config as config_lib
    from recore_dist.learner import Learner, LearnerConfig
    from recore_dist.models.world_model import Spaces

    torch.set_num_threads(threads)
    data = {"model": {"size": size}, "objective": {"name": method, "inputs": list(inputs)}, "batch_size": batch_size,
            "batch_length": length, "precision": precision, "device": "cpu", "compile": False,
            "grad_diagnostics_every": grad_every, "seed": 0}
    config_lib.apply_overrides(data, overrides)
    cfg = config_lib.from_dict(LearnerConfig, data)
    spaces = Spaces(action_dim=spaces_meta["action_dim"], proprio_dim=spaces_meta["proprio_dim"],
                    max_depth=spaces_meta["max_depth"], terminates=spaces_meta.get("terminates", False))
    return Learner(cfg, spaces)


def _fields(batch: dict[str, np.ndarray], modalities: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The batch fields a learner reading ``modalities`` takes (proprio only when it is encoded)."""
    keep = [k for k in BATCH_FIELDS if k != "proprio" or "proprio" in modalities]
    return {k: batch[k] for k in keep}


def train_one(*, method: str, updates: int, size: str, batch_size: int, length: int, grad_every: int,
              precision: str, threads: int, data_args: dict[str, Any], overrides: list[str],
              env: str = CONTROL_ENV) -> dict[str, Any]:
    """Train ``method`` for ``updates`` on the fit episodes and probe it (call in a fresh process)."""
    from recore_dist.bench.probe_data import collect_probe_data

    if env != CONTROL_ENV:
        return train_one_nav(method=method, updates=updates, size=size, batch_size=batch_size, length=length,
                             grad_every=grad_every, precision=precision, threads=threads, data_args=data_args,
                             overrides=overrides)

    data = collect_probe_data(**data_args)
    fit, test = data.split_indices(0.25, seed=0)
    meta = {"action_dim": data.train["action"].shape[-1], "proprio_dim": data.train["proprio"].shape[-1],
            "max_depth": 10.0}
    learner = _learner(method, size, batch_size, length, grad_every, precision, threads, meta, overrides)
    rng = np.random.default_rng(1)
    modalities = learner.cfg.objective.modalities
    history, seconds = _train(learner, updates, lambda: _fields(
        data.sequences("train", batch_size, length, rng, episodes=fit), modalities))
    result = summarise(method, history, seconds, learner.model_opt_cfg.clip)
    result.update(probe(learner, data, fit, test, modalities))
    result.update({"precision": str(learner.dtype).replace("torch.", ""), "threads": threads,
                   "params": learner.param_counts()["total"]})
    return result


def _train(learner, updates: int, next_batch) -> tuple[list[dict[str, float]], list[float]]:
    history: list[dict[str, float]] = []
    seconds: list[float] = []
    for _ in range(updates):
        batch = next_batch()
        start = time.perf_counter()
        history.append(learner.update(batch))
        seconds.append(time.perf_counter() - start)
    return history, seconds


def train_one_nav(*, method: str, updates: int, size: str, batch_size: int, length: int, grad_every: int,
                  precision: str, threads: int, data_args: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Navigation: train on train-scene segments, then the goal probe (``nav_probe``)."""
    from recore_dist.bench.nav_probe import collect_nav_probe_data, goal_targets, r2, sequences

    data = collect_nav_probe_data(**data_args)
    train = data["train"]
    segments = train["reward"].shape[0]
    fit, test = np.arange(segments - segments // 4), np.arange(segments - segments // 4, segments)
    meta = {"action_dim": train["action"].shape[-1], "proprio_dim": train["proprio"].shape[-1], "max_depth": 10.0,
            "terminates": True}
    learner = _learner(method, size, batch_size, length, grad_every, precision, threads, meta, overrides,
                       inputs=("image", "proprio"))
    modalities = learner.cfg.objective.modalities
    rng = np.random.default_rng(1)
    history, seconds = _train(learner, updates, lambda: _fields(
        sequences(train, batch_size, length, rng, episodes=fit), modalities))
    result = summarise(method, history, seconds, learner.model_opt_cfg.clip)
    fit_feat, _ = features(learner, train, fit, modalities)
    fit_goal = goal_targets(train["proprio"][fit])
    rows = len(fit_feat) * 3 // 4  # ridge penalty chosen on the last quarter of the fit segments
    val = {r: r2(ridge_predict(ridge_fit(fit_feat[:rows], fit_goal[:rows], r), fit_feat[rows:]), fit_goal[rows:])
           for r in RIDGES}
    ridge = max(val, key=val.get)
    model = ridge_fit(fit_feat, fit_goal, ridge)
    held = data["heldout"]
    every = np.arange(held["reward"].shape[0])
    result.update({
        "goal_probe_ridge": ridge,
        "goal_probe_r2": r2(ridge_predict(model, features(learner, held, every, modalities)[0]),
                            goal_targets(held["proprio"])),
        "goal_probe_r2_train": r2(ridge_predict(model, features(learner, train, test, modalities)[0]),
                                  goal_targets(train["proprio"][test])),
        "precision": str(learner.dtype).replace("torch.", ""), "threads": threads,
        "params": learner.param_counts()["total"]})
    return result


def summarise(method: str, history: list[dict[str, float]], seconds: list[float], clip: float) -> dict[str, Any]:
    """Speed, clipping, gradient shares and self-supervised figures from the update metrics."""
    late = history[WARMUP_UPDATES:] or history
    grads = [{k[5:]: v for k, v in h.items() if k.startswith("grad/")} for h in late]
    grads = [g for g in grads if g]
    shares: dict[str, float] = {}
    for g in grads:
        total = sum(g.values()) or 1.0
        for term, value in g.items():
            shares[term] = shares.get(term, 0.0) + value / total / len(grads)
    tail = history[-max(1, len(history) // 10):]
    out: dict[str, Any] = {
        "method": method, "updates": len(history),
        "seconds_per_update": statistics.median(seconds[2:] or seconds),
        "clip_fraction": float(np.mean([h["opt/model_grad_norm"] > clip for h in late])),
        "grad_norm_median": float(np.median([h["opt/model_grad_norm"] for h in late])),
        "grad_share": shares, "grad_norm": {k: float(np.mean([g[k] for g in grads if k in g])) for k in shares},
        "losses_end": {k: float(np.mean([h[k] for h in tail if k in h])) for k in tail[-1] if k.startswith("loss/")},
        "ssl_metric": SSL_METRIC.get(method), "ssl_accuracy": None, "ssl_chance": None}
    if method in SSL_METRIC:
        out["ssl_accuracy"] = float(np.mean([h[SSL_METRIC[method]] for h in tail]))
        out["ssl_chance"] = float(np.mean([h[SSL_CHANCE[method]] for h in tail]))
        out["ssl_accuracy_start"] = float(np.mean([h[SSL_METRIC[method]] for h in history[:10]]))
        blocks = np.array_split(np.array([h[SSL_METRIC[method]] for h in history]), min(10, len(history)))
        out["ssl_curve"] = [float(b.mean()) for b in blocks]  # mean per tenth of the updates: still rising?
        if "wm/inverse_temperature" in tail[-1]:
            out["inverse_temperature_end"] = float(np.mean([h["wm/inverse_temperature"] for h in tail]))
    if method == "hrssm":
        out["ssl_metric"] = "wm/latent_recon_error"
        out["latent_recon_error_start"] = float(np.mean([h["wm/latent_recon_error"] for h in history[:10]]))
        out["latent_recon_error_end"] = float(np.mean([h["wm/latent_recon_error"] for h in tail]))
    return out


# -- the probe ---------------------------------------------------------------------------------------
def features(learner, split: dict[str, np.ndarray], episodes: np.ndarray, modalities: tuple[str, ...]):
    """Posterior features ``[E * L, F]`` and reward predictions ``[E * L]`` of whole episodes,
    raw frames (no augmentation, no masking), in eval mode."""
    import torch

    batch = learner.to_tensors(_fields({k: v[episodes] for k, v in split.items()}, modalities))
    wm = learner.wm
    learner.objective.eval()
    with torch.no_grad(), learner.autocast():
        embed, _ = wm.encode_views(wm.images(batch["image"]), batch)
        post, _ = wm.observe(embed, batch["action"], batch["is_first"])
        feat = wm.feat(post)
        reward = wm.reward(feat)
    learner.objective.train()
    return feat.float().flatten(0, 1).cpu().numpy(), reward.float().flatten().cpu().numpy()


def depth_targets(split: dict[str, np.ndarray], episodes: np.ndarray) -> np.ndarray:
    """16 x 16 area-averaged depth in units of the 10 m clip, ``[E * L, 256]``."""
    depth = split["depth"][episodes][..., 0] / 10.0  # [E, L, H, W]
    e, l, h, w = depth.shape
    pooled = depth.reshape(e, l, PROBE_SIDE, h // PROBE_SIDE, PROBE_SIDE, w // PROBE_SIDE).mean((3, 5))
    return pooled.reshape(e * l, -1)


def ridge_fit(x: np.ndarray, y: np.ndarray, ridge: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Standardised ridge regression ``y ~ x``: returns ``(mean, scale, weights)``."""
    mean, scale = x.mean(0), x.std(0) + 1e-6
    z = np.concatenate([(x - mean) / scale, np.ones((len(x), 1))], 1)
    penalty = ridge * len(x) * np.eye(z.shape[1])
    penalty[-1, -1] = 0.0
    weights = np.linalg.solve(z.T @ z + penalty, z.T @ y)
    return mean, scale, weights


def ridge_predict(model: tuple[np.ndarray, np.ndarray, np.ndarray], x: np.ndarray) -> np.ndarray:
    mean, scale, weights = model
    return np.concatenate([(x - mean) / scale, np.ones((len(x), 1))], 1) @ weights


def probe(learner, data, fit: np.ndarray, test: np.ndarray, modalities: tuple[str, ...]) -> dict[str, Any]:
    """Reward-head and depth-probe errors on the test episodes under both splits, and their ratios."""
    fit_feat, _ = features(learner, data.train, fit, modalities)
    fit_depth = depth_targets(data.train, fit)
    rows = len(fit_feat) // len(fit) * (len(fit) - max(1, len(fit) // 4))  # last quarter of the fit episodes
    val_err = {r: float(np.mean((ridge_predict(ridge_fit(fit_feat[:rows], fit_depth[:rows], r), fit_feat[rows:])
                                 - fit_depth[rows:]) ** 2)) for r in RIDGES}
    ridge = min(val_err, key=val_err.get)
    depth_model = ridge_fit(fit_feat, fit_depth, ridge)
    depth_var = float(fit_depth.var(0).mean())  # per-pixel variance over frames: what a probe must explain
    arrived = ~data.train["is_first"][test].reshape(-1)
    reward = data.train["reward"][test].reshape(-1)[arrived]
    reward_var = float(reward.var()) or 1.0
    out: dict[str, Any] = {"depth_probe_ridge": ridge}
    for split in ("train", "heldout"):
        feat, reward_pred = features(learner, data.split(split), test, modalities)
        depth_err = float(np.mean((ridge_predict(depth_model, feat) - depth_targets(data.split(split), test)) ** 2))
        out[f"reward_error_{split}"] = float(np.mean((reward_pred[arrived] - reward) ** 2)) / reward_var
        out[f"depth_error_{split}"] = depth_err / depth_var
    out["probe_ratio"] = {"reward": out["reward_error_heldout"] / max(out["reward_error_train"], 1e-9),
                          "depth": out["depth_error_heldout"] / max(out["depth_error_train"], 1e-9)}
    return out


# -- driver ------------------------------------------------------------------------------------------
def _child(spec: dict[str, Any], threads: int) -> dict[str, Any]:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    env.setdefault("MUJOCO_GL", "egl")
    proc = subprocess.run([sys.executable, "-m", __name__, "--child", json.dumps(spec)], capture_output=True,
                          text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"bench objectives: {spec['method']} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_bench(*, methods: tuple[str, ...] | list[str] = METHODS, updates: int = 500, size: str = "xs",
              batch_size: int = 16, length: int = 32, grad_every: int = 25, threads: int = 2,
              precision: str = "auto", episodes: int = 32, seed: int = 0, overrides: list[str] | None = None,
              cache_dir: str = "runs/cache/probe_data", progress: bool = True, env: str = CONTROL_ENV,
              ) -> dict[str, Any]:
    """Collect (or load) the dataset once, then train and probe each method in its own process."""
    from recore_dist.bench.probe_data import collect_probe_data

    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown methods {unknown}; known: {list(METHODS)}")
    if updates < 1:
        raise ValueError(f"updates={updates} must be >= 1")
    if env not in (CONTROL_ENV, NAV_ENV):
        raise ValueError(f"bench objectives runs on {CONTROL_ENV} or {NAV_ENV}, got {env!r}")
    start = time.perf_counter()
    if env == NAV_ENV:
        from recore_dist.bench.nav_probe import collect_nav_probe_data

        # many short segments: each is one start-goal pair, and the probe must see many goals
        data_args = {"env_name": env, "episodes": max(3 * episodes, 8), "length": 64, "seed": seed,
                     "cache_dir": cache_dir}
        collect_nav_probe_data(**data_args)  # once, cached for the children
    else:
        data_args = {"episodes": episodes, "length": 126, "seed": seed, "cache_dir": cache_dir}
        collect_probe_data(**data_args)  # once, cached for the children
    collect_seconds = time.perf_counter() - start
    rows = []
    for method in methods:
        spec = {"method": method, "updates": updates, "size": size, "batch_size": batch_size, "length": length,
                "grad_every": grad_every, "precision": precision, "threads": threads, "data_args": data_args,
                "overrides": list(overrides or []), "env": env}
        if progress:
            print(f"[bench objectives] {method}: {updates} updates ...", file=sys.stderr, flush=True)
        rows.append(_child(spec, threads))
        if progress and env == NAV_ENV:
            row = rows[-1]
            print(f"[bench objectives] {method}: {row['seconds_per_update']:.2f} s/update, clip "
                  f"{row['clip_fraction']:.0%}, goal probe R^2 held-out {row['goal_probe_r2']:.3f} (train scenes "
                  f"{row['goal_probe_r2_train']:.3f})", file=sys.stderr, flush=True)
        elif progress:
            row = rows[-1]
            print(f"[bench objectives] {method}: {row['seconds_per_update']:.2f} s/update, clip "
                  f"{row['clip_fraction']:.0%}, ssl {row['ssl_accuracy']} (chance {row['ssl_chance']}), shares "
                  f"{ {k: round(v, 2) for k, v in row['grad_share'].items()} }, probe {row['probe_ratio']}",
                  file=sys.stderr, flush=True)
    nav = env == NAV_ENV
    return {"task": env, "interventions": "held-out scenes" if nav else "colour,background",
            "episodes": data_args["episodes"],
            "fit_test": ("75% of train-scene segments / all held-out-scene segments" if nav
                         else "75% / 25% of episodes"), "batch_size": batch_size, "length": length, "size": size,
            "updates": updates, "threads": threads, "cores": os.cpu_count(), "cpu": _cpu_name(),
            "collect_seconds": collect_seconds, "methods": {row["method"]: row for row in rows}}


def _cpu_name() -> str:
    from recore_dist.learner import _cpu_has_bf16

    try:
        with open("/proc/cpuinfo") as f:
            name = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    except OSError:
        name = ""
    return (name or platform.processor()) + (" (avx512_bf16)" if _cpu_has_bf16() else "")


def _common_columns(name: str, row: dict[str, Any]) -> str:
    """method, s/update, clip fraction and the self-supervised columns of a table row."""
    ssl = "-" if row["ssl_accuracy"] is None else f"{row['ssl_accuracy']:.3f}"
    chance = "-" if row["ssl_chance"] is None else f"{row['ssl_chance']:.4f}"
    if name == "hrssm":
        ssl, chance = f"{row['latent_recon_error_end']:.3f}", f"({row['latent_recon_error_start']:.3f})"
    return f"{name:<8}{row['seconds_per_update']:>7.2f}{row['clip_fraction']:>6.0%}{ssl:>9}{chance:>8}"


def _top_shares(row: dict[str, Any]) -> str:
    top = sorted(row["grad_share"].items(), key=lambda kv: -kv[1])[:3]
    return ", ".join(f"{k} {v:.0%}" for k, v in top)


def format_table(result: dict[str, Any]) -> str:
    if result["task"] == NAV_ENV:
        return format_nav_table(result)
    rows = result["methods"]
    first = next(iter(rows.values()))
    lines = [f"bench objectives: {result['task']} ({result['interventions']}), random-policy replay of "
             f"{result['episodes']} episodes ({result['fit_test']} fit / test); {result['updates']} updates of "
             f"B{result['batch_size']} x T{result['length']}, size {result['size']}; {result['threads']} threads "
             f"on {result['cores']} cores, {first['precision']}; {result['cpu']}",
             f"{'method':<8}{'s/upd':>7}{'clip':>6}{'ssl acc':>9}{'chance':>8}{'reward err':>12}{'ratio':>7}"
             f"{'depth err':>11}{'ratio':>7}  largest gradient share"]
    for name, row in rows.items():
        lines.append(f"{_common_columns(name, row)}{row['reward_error_train']:>6.2f}/{row['reward_error_heldout']:<5.2f}"
                     f"{row['probe_ratio']['reward']:>7.2f}{row['depth_error_train']:>5.2f}/"
                     f"{row['depth_error_heldout']:<5.2f}{row['probe_ratio']['depth']:>7.2f}  {_top_shares(row)}")
    lines.append("errors: normalised MSE train/held-out split on test episodes (same states); ratio = held-out / "
                 "train; hrssm's ssl column: latent reconstruction error at the end (start)")
    return "\n".join(lines)


def format_nav_table(result: dict[str, Any]) -> str:
    rows = result["methods"]
    first = next(iter(rows.values()))
    lines = [f"bench objectives: {result['task']}, random-policy replay of {result['episodes']} segments per split "
             f"({result['fit_test']}); {result['updates']} updates of B{result['batch_size']} x T{result['length']}, "
             f"size {result['size']}; {result['threads']} threads on {result['cores']} cores, {first['precision']}; "
             f"{result['cpu']}",
             f"{'method':<8}{'s/upd':>7}{'clip':>6}{'ssl acc':>9}{'chance':>8}{'goal R2 held-out':>18}"
             f"{'(train scenes)':>16}  largest gradient share"]
    for name, row in rows.items():
        lines.append(f"{_common_columns(name, row)}{row['goal_probe_r2']:>18.3f}{row['goal_probe_r2_train']:>16.3f}"
                     f"  {_top_shares(row)}")
    lines.append("goal R2: ridge probe from [h, z] to goal distance, sin and cos of bearing, fitted on train-scene "
                 "frames; R^2 on held-out-scene frames (and on unseen train-scene segments)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) == 2 and argv[0] == "--child":
        print(json.dumps(train_one(**json.loads(argv[1]))))
        return 0
    print("usage: python -m recore_dist.bench.objectives --child JSON (use `recore-dist bench objectives`)",
          file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
