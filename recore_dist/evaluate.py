"""``recore-dist evaluate``: load a run's weights and run its policy in actor mode.

    recore-dist evaluate --logdir runs/quickstart [--split train|heldout|both] [--episodes 10]
                         [--video agent.gif] [--json] [--env NAME] [--set env.difficulty=hard]

The task is the run's saved config (``--env`` / ``--set`` override it, e.g. another difficulty).
Episodes come from the seeded, scene-balanced plans of :mod:`recore_dist.runtime.fixed_eval`,
so two checkpoints evaluated this way meet the same episodes. Prints return and length per
split (and SR, SPL on navigation); ``--video`` writes the first planned episode of each split
side by side, each with its return in a caption. Problems with the run (missing or damaged
checkpoint, a config from another version) are one line naming the file
(:class:`~recore_dist.runtime.saved_run.SavedRunError`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

SPLIT_CHOICES = {"train": ("train",), "heldout": ("heldout",), "both": ("train", "heldout")}


def run_evaluate(*, logdir: str | None = None, checkpoint: str | None = None, split: str = "both",
                 episodes: int = 10, video: str | None = None, env: str | None = None,
                 overrides: list[str] | None = None, env_options: dict[str, Any] | None = None) -> dict[str, Any]:
    from recore_dist.runtime.fixed_eval import evaluate_policies, record_episode
    from recore_dist.runtime.saved_run import open_run

    if split not in SPLIT_CHOICES:
        raise ValueError(f"split must be one of {sorted(SPLIT_CHOICES)}, got {split!r}")
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    run = open_run(logdir, checkpoint, overrides=overrides, env=env)
    splits = SPLIT_CHOICES[split]
    results = evaluate_policies(run.cfg, run.spaces, run.weights, episodes=episodes, splits=splits,
                                policies=("learned",), env_options=env_options)["learned"]
    out: dict[str, Any] = {"logdir": str(run.logdir), "checkpoint": str(run.checkpoint), "env": run.cfg.env.name,
                           "updates": run.updates, "env_steps": run.env_steps, "splits": results}
    if video:
        from recore_dist.runtime.summaries import evaluation_video
        from recore_dist.video import upscale, write_video

        recorded = {}
        for name in splits:
            frames, episode = record_episode(run.cfg, run.spaces, run.weights, name, env_options=env_options)
            recorded[name] = {**episode, "frames": upscale(frames, 2)}
        out["video"] = str(write_video(Path(video), evaluation_video(recorded, max_frames=len(max(
            (e["frames"] for e in recorded.values()), key=len)))))
    return out


def format_table(result: dict[str, Any]) -> str:
    splits = result["splits"]
    nav = any("sr" in s for s in splits.values())
    lines = [f"{result['env']} from {result['checkpoint']} ({result['updates']} updates, {result['env_steps']} env steps)",
             f"{'split':<9}{'episodes':>9}{'return':>16}{'length':>8}" + (f"{'SR':>7}{'SPL':>7}" if nav else "")]
    for name, s in splits.items():
        line = f"{name:<9}{int(s['episodes']):>9}{s['return']:>9.1f} ± {s['return_se']:<4.1f}{s['length']:>8.0f}"
        if nav:
            line += f"{s['sr']:>7.2f}{s['spl']:>7.2f}"
        lines.append(line)
    for name, s in splits.items():
        if "actor_saturated" in s:
            lines.append(f"actor on {name}: mean at the bound (|tanh| > 0.99) {s['actor_saturated']:.0%} of steps, "
                         f"mean 1 - tanh^2 {s['actor_tanh_grad']:.3f}, median std {s['actor_std']:.2f}")
    if "video" in result:
        lines.append(f"video: {result['video']}")
    return "\n".join(lines)
