"""World-model objectives: one module each over shared pieces (InfoNCE, EMA, dynamics terms)."""

from __future__ import annotations

import dataclasses
from typing import Literal

from recore_dist.models.config import ModelConfig
from recore_dist.models.world_model import Spaces, check_modalities
from recore_dist.objectives.base import DynamicsConfig, Objective
from recore_dist.objectives.contrastive import info_nce
from recore_dist.objectives.coral import CoRAL, CoRALConfig
from recore_dist.objectives.core import CoRe, CoReConfig
from recore_dist.objectives.hrssm import HRSSM, HRSSMConfig
from recore_dist.objectives.recon import Recon, ReconConfig
from recore_dist.objectives.recore import ReCoRe, ReCoReConfig

OBJECTIVES = {"recore": ReCoRe, "recon": Recon, "core": CoRe, "hrssm": HRSSM, "coral": CoRAL}


@dataclasses.dataclass
class ObjectiveConfig:
    """Which world-model objective trains the model, and each objective's settings."""

    name: Literal["recore", "recon", "core", "hrssm", "coral"] = "recore"
    """Objective: ``recore`` (contrastive + invariant regulariser), ``recon`` (pixel baseline),
    ``core`` (contrastive prediction from the prior), ``hrssm`` (masked + EMA raw branch,
    latent reconstruction, bisimulation) or ``coral`` (per-modality losses)."""
    inputs: tuple[str, ...] = ("image",)
    """Observation fields the world model encodes, one encoder each (``image`` always; add
    ``proprio`` for the task vector: navigation's goal distance and bearing). Pixels only by
    default (the DMC-from-pixels setting); the navigation presets set ``[image, proprio]``, since
    an image-only agent cannot see its goal. CoRAL always adds ``proprio``. Every objective also
    decodes an encoded ``proprio`` from ``[h, z]`` (``dynamics.vector_scale``): the policy reads
    only the latent, so the goal must survive into it; see ``DynamicsConfig.vector_scale``."""
    dynamics: DynamicsConfig = dataclasses.field(default_factory=DynamicsConfig)
    """KL / reward / continue weights shared by every objective."""
    recore: ReCoReConfig = dataclasses.field(default_factory=ReCoReConfig)
    """Settings used when ``name`` is ``recore``."""
    recon: ReconConfig = dataclasses.field(default_factory=ReconConfig)
    """Settings used when ``name`` is ``recon``."""
    core: CoReConfig = dataclasses.field(default_factory=CoReConfig)
    """Settings used when ``name`` is ``core``."""
    hrssm: HRSSMConfig = dataclasses.field(default_factory=HRSSMConfig)
    """Settings used when ``name`` is ``hrssm``."""
    coral: CoRALConfig = dataclasses.field(default_factory=CoRALConfig)
    """Settings used when ``name`` is ``coral``."""


    def __post_init__(self) -> None:
        check_modalities(tuple(self.inputs))

    @property
    def modalities(self) -> tuple[str, ...]:
        """The fields the encoder reads: ``inputs`` plus what the objective needs (CoRAL: proprio).
        Learner and acting policy build the same encoder from this."""
        need = getattr(getattr(self, self.name), "modalities", ())
        return (*self.inputs, *(m for m in need if m not in self.inputs))


def make_objective(cfg: ObjectiveConfig, model: ModelConfig, spaces: Spaces) -> Objective:
    """Build the configured objective (and its world model)."""
    cls = OBJECTIVES[cfg.name]
    return cls(model, spaces, cfg.dynamics, getattr(cfg, cfg.name), modalities=cfg.modalities)


__all__ = ["HRSSM", "OBJECTIVES", "CoRAL", "CoRALConfig", "CoRe", "CoReConfig", "DynamicsConfig", "HRSSMConfig",
           "Objective", "ObjectiveConfig", "ReCoRe", "ReCoReConfig", "Recon", "ReconConfig", "info_nce",
           "make_objective"]
