"""World-model objectives: one module each over shared pieces (InfoNCE, EMA, dynamics terms)."""

from __future__ import annotations

import dataclasses
from typing import Literal

from recore_dist.models.config import ModelConfig
from recore_dist.models.world_model import Spaces
from recore_dist.objectives.base import DynamicsConfig, Objective
from recore_dist.objectives.contrastive import info_nce
from recore_dist.objectives.recon import Recon, ReconConfig
from recore_dist.objectives.recore import ReCoRe, ReCoReConfig

OBJECTIVES = {"recore": ReCoRe, "recon": Recon}


@dataclasses.dataclass
class ObjectiveConfig:
    """Which world-model objective trains the model, and each objective's settings."""

    name: Literal["recore", "recon"] = "recore"
    """Objective: ``recore`` (contrastive + invariant regulariser) or ``recon`` (pixel baseline)."""
    dynamics: DynamicsConfig = dataclasses.field(default_factory=DynamicsConfig)
    """KL / reward / continue weights shared by every objective."""
    recore: ReCoReConfig = dataclasses.field(default_factory=ReCoReConfig)
    """Settings used when ``name`` is ``recore``."""
    recon: ReconConfig = dataclasses.field(default_factory=ReconConfig)
    """Settings used when ``name`` is ``recon``."""


def make_objective(cfg: ObjectiveConfig, model: ModelConfig, spaces: Spaces) -> Objective:
    """Build the configured objective (and its world model)."""
    cls = OBJECTIVES[cfg.name]
    return cls(model, spaces, cfg.dynamics, getattr(cfg, cfg.name))


__all__ = ["OBJECTIVES", "DynamicsConfig", "Objective", "ObjectiveConfig", "ReCoRe", "ReCoReConfig",
           "Recon", "ReconConfig", "info_nce", "make_objective"]
