"""Behaviour learning in imagination and the acting policy."""

from recore_dist.behavior.actor_critic import ActorCritic, BehaviorConfig, lambda_returns, symexp, symlog, twohot
from recore_dist.behavior.policy import Policy, policy_weights

__all__ = ["ActorCritic", "BehaviorConfig", "Policy", "lambda_returns", "policy_weights", "symexp", "symlog", "twohot"]
