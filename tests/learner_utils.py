"""Small learner configs and synthetic replay batches for unit tests."""

from __future__ import annotations

import numpy as np

from recore_dist import config as config_lib
from recore_dist.learner import LearnerConfig

TINY_MODEL = dict(size="custom", image_size=32, cnn_layers=3, cnn_depth=8, deter=32, stoch=4, classes=4,
                  hidden=32, projection=16, target_size=16, target_depth=4)


def tiny_learner_config(objective: str = "recore", **overrides) -> LearnerConfig:
    data = {"model": dict(TINY_MODEL), "objective": {"name": objective}, "batch_size": 4, "batch_length": 8,
            "behavior": {"horizon": 5}, "precision": "float32", "device": "cpu", "seed": 0}
    for key, value in overrides.items():
        node = data
        *parents, last = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return config_lib.from_dict(LearnerConfig, data)


def synthetic_batch(b: int = 4, t: int = 8, size: int = 32, action_dim: int = 1, seed: int = 0,
                    num_classes: int = 4) -> dict[str, np.ndarray]:
    """A batch with learnable structure: a bright square whose position follows the action."""
    rng = np.random.default_rng(seed)
    image = np.zeros((b, t, size, size, 3), np.uint8)
    depth = np.full((b, t, size, size, 1), 8.0, np.float32)
    seg = np.zeros((b, t, size, size), np.int32)
    pos = rng.integers(4, size - 12, (b, 2))
    action = rng.uniform(-1, 1, (b, t, action_dim)).astype(np.float32)
    for i in range(b):
        y, x = pos[i]
        for s in range(t):
            image[i, s, y:y + 8, x:x + 8] = (200, 80, 40)
            depth[i, s, y:y + 8, x:x + 8] = 2.0
            seg[i, s, y:y + 8, x:x + 8] = 1 + i % (num_classes - 1)
            x = int(np.clip(x + 3 * action[i, s, 0], 0, size - 8))
    is_first = np.zeros((b, t), bool)
    is_first[:, 0] = True
    reward = (depth[..., 0] < 5).mean((-1, -2)).astype(np.float32)
    reward[is_first] = 0.0
    return {"image": image, "depth": depth, "segmentation": seg, "clean_image": image.copy(), "action": action,
            "reward": reward, "is_first": is_first, "is_last": np.zeros((b, t), bool),
            "is_terminal": np.zeros((b, t), bool)}
