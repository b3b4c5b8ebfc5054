"""Behaviour learning (in imagination, or latent SAC on replayed features) and the acting policy."""

from recore_dist.behavior.actor_critic import ActorCritic, BehaviorConfig, SACConfig, lambda_returns
from recore_dist.models.twohot import symexp, symlog, twohot
from recore_dist.behavior.policy import Policy, policy_weights
from recore_dist.behavior.sac import LatentSAC, replay_transitions

__all__ = ["ActorCritic", "BehaviorConfig", "LatentSAC", "Policy", "SACConfig", "lambda_returns", "policy_weights",
           "replay_transitions", "symexp", "symlog", "twohot"]
