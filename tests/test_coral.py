"""CoRAL: per-modality loss routing, prior vs posterior queries, the multimodal encoder in the
learner, the policy and the env loop (real dm_control observations with ``proprio``)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from recore_dist.behavior import Policy
from recore_dist.envs import make, make_vector
from recore_dist.learner import Learner
from recore_dist.models.config import ModelConfig
from recore_dist.models.world_model import MultiEncoder, Spaces, WorldModel
from recore_dist.objectives import CoRAL, CoRALConfig, DynamicsConfig, Recon, ReconConfig, ReCoRe, ReCoReConfig
from recore_dist.replay import ReplayStore
from recore_dist.runtime.env_loop import EnvLoop
from recore_dist.runtime.env_factory import spaces_of
from tests.learner_utils import TINY_MODEL, synthetic_batch, tiny_learner_config

PROPRIO = 5
SPACES = Spaces(action_dim=1, proprio_dim=PROPRIO)

# The parameter names of an image-only world model before CoRAL existed (tiny model, no heads):
# checkpoints and policy snapshots of every other objective rely on them.
IMAGE_ONLY_KEYS = [
    "encoder.convs.0.weight", "encoder.convs.0.bias", "encoder.convs.2.weight", "encoder.convs.2.bias",
    "encoder.convs.4.weight", "encoder.convs.4.bias", "encoder.norm.weight", "encoder.norm.bias",
    "rssm.img_in.0.weight", "rssm.img_in.1.weight", "rssm.img_in.1.bias", "rssm.gru.linear.weight",
    "rssm.gru.norm.weight", "rssm.gru.norm.bias", "rssm.prior_net.0.0.weight", "rssm.prior_net.0.1.weight",
    "rssm.prior_net.0.1.bias", "rssm.prior_net.1.weight", "rssm.prior_net.1.bias", "rssm.post_deter.weight",
    "rssm.post_embed.weight", "rssm.post_embed.bias", "rssm.post_out.0.weight", "rssm.post_out.0.bias",
    "rssm.post_out.2.weight", "rssm.post_out.2.bias", "reward.net.0.weight", "reward.net.1.weight",
    "reward.net.1.bias", "reward.net.3.weight", "reward.net.3.bias", "cont.net.0.weight", "cont.net.1.weight",
    "cont.net.1.bias", "cont.net.3.weight", "cont.net.3.bias",
]


def coral_batch(seed: int = 0) -> dict[str, np.ndarray]:
    batch = synthetic_batch(seed=seed)
    batch["proprio"] = np.random.default_rng(seed).normal(size=(4, 8, PROPRIO)).astype(np.float32)
    return batch


def tensors(batch: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    out = {k: torch.as_tensor(v) for k, v in batch.items()}
    for key in ("is_first", "is_last", "is_terminal"):
        out[key] = out[key].bool()
    return out


def objective(**cfg) -> CoRAL:
    torch.manual_seed(0)
    return CoRAL(ModelConfig(**TINY_MODEL), SPACES, DynamicsConfig(), CoRALConfig(**cfg))


def grad_norm(module: torch.nn.Module) -> float:
    return sum(float(p.grad.abs().sum()) for p in module.parameters() if p.grad is not None)


# ---------------------------------------------------------------------------------------- losses
@pytest.mark.parametrize("image_loss, proprio_loss, expected", [
    ("contrastive", "reconstruction", {"loss/contrastive_image", "loss/recon_proprio"}),
    ("reconstruction", "contrastive", {"loss/recon_image", "loss/contrastive_proprio"}),
    ("reconstruction", "reconstruction", {"loss/recon_image", "loss/recon_proprio"}),
    ("contrastive", "contrastive", {"loss/contrastive_image", "loss/contrastive_proprio"}),
])
def test_loss_per_modality_follows_config(image_loss, proprio_loss, expected):
    obj = objective(image_loss=image_loss, proprio_loss=proprio_loss)
    loss, metrics, post = obj(tensors(coral_batch()))
    assert {k for k in metrics if k.startswith("loss/")} == {"loss/kl", "loss/reward", "loss/cont", *expected}
    assert math.isfinite(float(loss.detach())) and post["deter"].shape[:2] == (4, 8)
    terms = [float(v.detach()) for k, v in metrics.items() if k.startswith("loss/")]
    assert float(loss.detach()) == pytest.approx(sum(terms))
    assert ("image" in obj.wm.decoders) == (image_loss == "reconstruction")
    assert hasattr(obj, "proprio_decoder") == (proprio_loss == "reconstruction")
    assert set(obj.temperatures) == {m for m, kind in obj.cfg.losses.items() if kind == "contrastive"}
    assert obj.batch_keys == ("image", "proprio")


def test_gradients_reach_the_modality_encoders():
    obj = objective()  # image contrastive, proprio reconstruction
    _, metrics, _ = obj(tensors(coral_batch()))
    encoder = obj.wm.encoder
    assert isinstance(encoder, MultiEncoder)
    metrics["loss/recon_proprio"].backward(retain_graph=True)
    assert grad_norm(encoder.proprio) > 0 and grad_norm(obj.proprio_decoder) > 0
    assert grad_norm(obj.key_heads) == 0  # the proprio loss does not touch the contrastive heads
    obj.zero_grad(set_to_none=True)
    metrics["loss/contrastive_image"].backward()
    assert grad_norm(encoder.image) > 0
    assert grad_norm(obj.key_heads["image"]) > 0 and grad_norm(obj.query_heads["image"]) > 0
    assert grad_norm(obj.temperatures["image"]) > 0
    assert grad_norm(obj.proprio_decoder) == 0


@pytest.mark.parametrize("style", ["predictive", "variational"])
def test_predictive_queries_come_from_the_prior(style):
    obj = objective(contrastive_style=style, proprio_loss="contrastive")
    t = 3
    batch = coral_batch()
    changed = {**batch, "image": batch["image"].copy(), "proprio": batch["proprio"].copy()}
    changed["image"][:, t] = np.random.default_rng(1).integers(0, 256, changed["image"][:, t].shape, np.uint8)
    changed["proprio"][:, t] += 5.0

    def predictions(data):
        torch.manual_seed(0)  # the same latent samples for both batches
        with torch.no_grad():
            _, post, prior_stats = obj.posterior(tensors(data))
            return obj.predictions(post, prior_stats)

    before, after = predictions(batch), predictions(changed)
    assert set(before) == {"image", "proprio"}
    for m in before:
        torch.testing.assert_close(before[m][:, :t], after[m][:, :t])  # the past never sees obs_t
        assert not torch.allclose(before[m][:, t + 1], after[m][:, t + 1])  # the future does
        same_at_t = torch.allclose(before[m][:, t], after[m][:, t])
        assert same_at_t == (style == "predictive"), (m, style)


# ---------------------------------------------------------------------------------------- models
def test_image_only_models_keep_their_parameter_names():
    model = ModelConfig(**TINY_MODEL)
    with_proprio = Spaces(action_dim=2, proprio_dim=7)  # an env with proprio, a model that ignores it
    assert list(WorldModel(model, with_proprio).state_dict()) == IMAGE_ONLY_KEYS
    for cls, cfg in ((Recon, ReconConfig()), (ReCoRe, ReCoReConfig())):
        plain = cls(model, Spaces(action_dim=2), DynamicsConfig(), cfg).state_dict()
        proprio = cls(model, with_proprio, DynamicsConfig(), cfg).state_dict()
        assert {k: v.shape for k, v in plain.items()} == {k: v.shape for k, v in proprio.items()}
        wm_keys = [k.removeprefix("wm.") for k in plain if k.startswith("wm.")]
        assert [k for k in wm_keys if k.startswith(("encoder.", "rssm."))] == IMAGE_ONLY_KEYS[:26]
    coral_keys = objective().wm.state_dict()
    assert "encoder.image.convs.0.weight" in coral_keys and "encoder.proprio.net.0.weight" in coral_keys


def test_multimodal_encoder_refuses_bad_settings():
    model = ModelConfig(**TINY_MODEL)
    with pytest.raises(ValueError, match="proprio_dim"):
        WorldModel(model, Spaces(action_dim=1), modalities=("image", "proprio"))
    with pytest.raises(ValueError, match="modalities"):
        WorldModel(model, SPACES, modalities=("proprio",))
    with pytest.raises(ValueError, match="proprio_dim"):
        CoRAL(model, Spaces(action_dim=1), DynamicsConfig(), CoRALConfig())
    with pytest.raises(ValueError, match="image_loss"):
        CoRALConfig(image_loss="pixels")
    with pytest.raises(ValueError, match="use embed"):
        objective().wm.encode(torch.zeros(1, 1, 3, 32, 32))


# ---------------------------------------------------------------------------------------- learner
@pytest.mark.parametrize("behavior", ["imagine", "sac"])
def test_learner_updates_a_coral_model(behavior):
    cfg = tiny_learner_config("coral", **{"objective.coral.contrastive_style": "predictive",
                                          "behavior.kind": behavior})
    learner = Learner(cfg, SPACES)
    batch = coral_batch()
    for _ in range(3):
        metrics = learner.update(batch)
    for key in ("loss/kl", "loss/reward", "loss/cont", "loss/contrastive_image", "loss/recon_proprio",
                "wm/contrastive_acc_image", "wm/inverse_temperature_image", "loss/world_model", "loss/actor"):
        assert key in metrics, key
    assert all(math.isfinite(v) for v in metrics.values()), metrics
    assert metrics["learner/skipped"] == 0 and metrics["opt/model_grad_norm"] > 0
    assert learner.objective.batch_keys == ("image", "proprio")
    assert cfg.objective.modalities == ("image", "proprio")
    assert tiny_learner_config("recon").objective.modalities == ("image",)
    del batch["proprio"]
    with pytest.raises(ValueError, match="proprio"):
        learner.update(batch)
    batch["proprio"] = np.zeros((4, 8, PROPRIO + 1), np.float32)
    with pytest.raises(ValueError, match="proprio must be"):
        learner.update(batch)


# ---------------------------------------------------------------------------------------- acting
@pytest.fixture(scope="module")
def envs():
    vec = make_vector("dmc:cartpole-swingup", 2, seed=0, size=32)
    yield vec
    vec.close()


def coral_learner_and_policy(spaces: Spaces, num_envs: int) -> tuple[Learner, Policy]:
    cfg = tiny_learner_config("coral")
    learner = Learner(cfg, spaces)
    policy = Policy(cfg.model, cfg.behavior, spaces, num_envs=num_envs, modalities=cfg.objective.modalities)
    policy.load(learner.policy_weights(), version=5)
    return learner, policy


def test_spaces_carry_the_env_proprio_width(envs):
    env = make("dmc:cartpole-swingup", size=32)
    try:
        width = env.observation_space["proprio"].shape[0]
    finally:
        env.close()
    spaces = spaces_of(envs)
    assert width == 5 and spaces.proprio_dim == width and spaces.action_dim == 1


def test_policy_acts_on_dmc_observations_like_the_learner_filters(envs):
    spaces = spaces_of(envs)
    learner, policy = coral_learner_and_policy(spaces, 2)
    assert policy.obs_keys == ("image", "proprio")
    assert any(k.startswith("encoder.proprio.") for k in learner.policy_weights())
    obs, _ = envs.reset()
    action = policy.act(obs, obs["is_first"], explore=False)
    assert action.shape == (2, 1) and action.dtype == np.float32 and np.abs(action).max() <= 1
    with torch.no_grad():  # the policy's state is the learner's posterior on the same observation
        wm = learner.wm
        embed = wm.embed({k: torch.as_tensor(obs[k])[:, None] for k in ("image", "proprio")})
        post, _ = wm.observe(embed, torch.zeros(2, 1, 1), torch.ones(2, 1, dtype=torch.bool))
    torch.testing.assert_close(policy.state["deter"], post["deter"][:, 0], atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="proprio"):
        policy.act(obs["image"], obs["is_first"])


def test_env_loop_with_coral_policy_emits_chunks_with_proprio(envs):
    learner, policy = coral_learner_and_policy(spaces_of(envs), 2)
    loop = EnvLoop(envs, policy, chunk_length=8, env_name="dmc:cartpole-swingup", seed=0)
    chunks, _ = loop.step(8)
    assert len(chunks) == 2
    for chunk in chunks:
        assert chunk.policy_version == 5  # the policy acted, not the random fallback
        assert chunk.obs["proprio"].shape == (8, 5) and chunk.obs["proprio"].dtype == np.float32
        assert np.isfinite(chunk.obs["proprio"]).all() and chunk.obs["image"].shape == (8, 32, 32, 3)
    replay = ReplayStore(64, length=8, keys=learner.objective.batch_keys, seed=0)
    for chunk in chunks:
        replay.add(chunk)
    batch = replay.sample(2)
    assert batch["proprio"].shape == (2, 8, 5)
    assert all(math.isfinite(v) for v in learner.update(batch).values())


@pytest.mark.slow
def test_local_runner_trains_and_evaluates_a_coral_model(tmp_path):
    from recore_dist import config as config_lib
    from recore_dist.runtime.config import TrainConfig
    from recore_dist.runtime.local import LocalRunner

    cfg = config_lib.from_dict(TrainConfig, {
        "logdir": str(tmp_path / "run"), "env_steps": 96, "num_envs": 2, "torch_threads": 1,
        "env": {"name": "dmc:cartpole-swingup", "size": 32},
        "replay": {"capacity": 10_000, "chunk_length": 16, "prefill": 64, "ratio": 8},
        "learner": {"model": dict(TINY_MODEL), "batch_size": 4, "batch_length": 8, "behavior": {"horizon": 4},
                    "device": "cpu", "objective": {"name": "coral", "coral": {"image_loss": "reconstruction"}}},
        "eval": {"every": 0, "episodes": 1, "num_envs": 1},
        "log_every": 2, "image_every": 2, "checkpoint_every": 5})
    runner = LocalRunner(cfg, progress=False)
    try:
        summary = runner.run()  # image summaries (open_loop/image) every 2 updates, eval, checkpoint
    finally:
        runner.close()
    assert summary["updates"] == 8 and math.isfinite(summary["eval_policy_train/return"])
    assert runner.spaces.proprio_dim == 5 and runner.policy.obs_keys == ("image", "proprio")
