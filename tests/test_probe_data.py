"""Probe data: the same random-policy states rendered under the train and held-out splits."""

from __future__ import annotations

import time
import warnings
import zipfile

import numpy as np
import pytest

from recore_dist.bench import probe_data
from recore_dist.bench.probe_data import ProbeData, cache_path, collect_probe_data, load_probe_data

SMALL = dict(episodes=2, length=40, size=32, seed=0)  # cartpole: an episode is 126 rows


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("probe_cache")


@pytest.fixture(scope="module")
def data(cache_dir) -> ProbeData:
    return collect_probe_data(cache_dir=cache_dir, **SMALL)


def test_shapes_and_dtypes(data):
    e, length, size = SMALL["episodes"], SMALL["length"], SMALL["size"]
    want = {"image": ((size, size, 3), np.uint8), "depth": ((size, size, 1), np.float32),
            "action": ((1,), np.float32), "reward": ((), np.float32), "is_first": ((), bool),
            "is_last": ((), bool), "is_terminal": ((), bool), "proprio": ((5,), np.float32),
            "state": ((4,), np.float64)}
    for split in ("train", "heldout"):
        fields = data.split(split)
        assert set(fields) == set(want)
        for key, (tail, dtype) in want.items():
            assert fields[key].shape == (e, length, *tail), (split, key, fields[key].shape)
            assert fields[key].dtype == dtype, (split, key, fields[key].dtype)
    assert (data.num_episodes, data.length) == (e, length)
    assert data.meta["env_name"] == "dmc:cartpole-swingup" and data.meta["interventions"] == "colour,background"
    assert data.meta["action_repeat"] == 8 and data.meta["env_episodes"] == e
    assert data.meta["steps"] == e * (length - 1)


def test_heldout_images_differ_depth_equal_actions_rewards_shared(data):
    train, held = data.train, data.heldout
    changed = np.mean(np.any(train["image"] != held["image"], axis=-1))
    assert changed > 0.5, f"held-out images differ from train images on only {changed:.3f} of the pixels"
    np.testing.assert_array_equal(train["depth"], held["depth"])
    for key in probe_data.SHARED_FIELDS:
        assert held[key] is train[key]
    assert np.abs(train["action"]).max() <= 1.0 and train["action"].std() > 0.3  # uniform random
    assert train["reward"].max() > 0.0
    ids = data.meta["intervention_ids"]
    assert all("train" in i and "heldout" not in i for seg in ids["train"] for i in seg)
    assert all("heldout" in i for seg in ids["heldout"] for i in seg)


def test_row_convention_is_first_at_each_segment_start(data):
    first = data.train["is_first"]
    assert first[:, 0].all() and not first[:, 1:].any()
    np.testing.assert_array_equal(data.train["reward"][:, 0], 0.0)
    assert not data.train["is_last"].any() and not data.train["is_terminal"].any()
    # the two segments are different episodes (different starts, different random actions)
    assert not np.allclose(data.train["state"][0, 0], data.train["state"][1, 0])


def test_one_heldout_sample_per_episode(data):
    """Static interventions: the background (sky pixels) is the same frame all episode long."""
    for split in ("train", "heldout"):
        fields = data.split(split)
        for e in range(data.num_episodes):
            sky = (fields["depth"][e, 0, ..., 0] >= 10.0) & (fields["depth"][e, -1, ..., 0] >= 10.0)
            assert sky.sum() > 50
            np.testing.assert_array_equal(fields["image"][e, 0][sky], fields["image"][e, -1][sky])


def test_train_split_is_what_the_training_env_renders(data):
    """Rendering held-out frames does not disturb the train env: replaying the recorded actions on
    an env built like a training config's gives the same images, depth and rewards."""
    from recore_dist.envs import make
    from recore_dist.runtime.config import EnvConfig

    cfg = EnvConfig(size=SMALL["size"])
    env = make(cfg.name, seed=SMALL["seed"], **cfg.options("train"))
    obs, _ = env.reset(seed=SMALL["seed"])
    for t in range(10):
        np.testing.assert_array_equal(obs["image"], data.train["image"][0, t])
        np.testing.assert_array_equal(obs["depth"], data.train["depth"][0, t])
        np.testing.assert_array_equal(env.physics.get_state(), data.train["state"][0, t])
        obs, reward, *_ = env.step(data.train["action"][0, t])
        assert reward == data.train["reward"][0, t + 1]
    other = make(cfg.name, seed=1, **cfg.options("train"))
    with pytest.raises(ValueError, match="another env's physics"):
        env.render_under(other.make_interventions("heldout"))


def test_cache_round_trip_builds_no_env(data, cache_dir, monkeypatch):
    args = probe_data._check_args(env_name="dmc:cartpole-swingup", interventions="colour,background",
                                  difficulty="easy", **SMALL)
    path = cache_path(cache_dir, args)
    assert path.exists() and "probe_v1_" in path.name and path.suffix == ".npz"

    def no_env(*_, **__):
        raise AssertionError("a cached call built an env")

    monkeypatch.setattr(probe_data, "_build_env", no_env)
    started = time.perf_counter()
    loaded = collect_probe_data(cache_dir=cache_dir, **SMALL)
    assert time.perf_counter() - started < 2.0
    for split in ("train", "heldout"):
        for key, arr in data.split(split).items():
            np.testing.assert_array_equal(loaded.split(split)[key], arr)
    assert loaded.meta == data.meta
    assert cache_path(cache_dir, {**args, "seed": 1}) != path  # every argument is in the name


def test_damaged_cache_is_rebuilt_with_a_warning(cache_dir):
    small = {**SMALL, "episodes": 1, "length": 8}
    first = collect_probe_data(cache_dir=cache_dir, **small)
    args = probe_data._check_args(env_name="dmc:cartpole-swingup", interventions="colour,background",
                                  difficulty="easy", **small)
    path = cache_path(cache_dir, args)
    path.write_bytes(path.read_bytes()[:1000])  # truncated
    with pytest.raises((ValueError, OSError, EOFError, zipfile.BadZipFile)):
        load_probe_data(path)
    with pytest.warns(RuntimeWarning, match=str(path.name)):
        again = collect_probe_data(cache_dir=cache_dir, **small)
    np.testing.assert_array_equal(again.train["image"], first.train["image"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_probe_data(path, expect=args)  # the rebuilt file is fine again


def test_sequences_same_windows_for_both_splits(data):
    a = data.sequences("train", 5, 16, np.random.default_rng(3))
    b = data.sequences("heldout", 5, 16, np.random.default_rng(3))
    assert a["image"].shape == (5, 16, SMALL["size"], SMALL["size"], 3) and a["reward"].shape == (5, 16)
    np.testing.assert_array_equal(a["state"], b["state"])
    np.testing.assert_array_equal(a["depth"], b["depth"])
    assert (a["image"] != b["image"]).any()
    assert a["is_first"][:, 0].all()
    assert not data.train["is_first"][:, 1:].any()  # the windows are copies
    only = data.sequences("train", 8, 4, np.random.default_rng(0), episodes=np.array([1]))
    np.testing.assert_array_equal(np.isin(only["state"][:, 0, 0], data.train["state"][1, :, 0]), True)
    with pytest.raises(ValueError, match="length"):
        data.sequences("train", 2, SMALL["length"] + 1, np.random.default_rng(0))
    with pytest.raises(ValueError, match="split must be one of"):
        data.sequences("test", 2, 4, np.random.default_rng(0))


def test_split_indices_disjoint_episodes(data):
    fit, test = data.split_indices(0.5, seed=0)
    assert len(fit) == len(test) == 1 and set(fit.tolist()) | set(test.tolist()) == {0, 1}
    fake = ProbeData(train={k: np.repeat(v, 5, axis=0) for k, v in data.train.items()},
                     heldout={k: np.repeat(v, 5, axis=0) for k, v in data.heldout.items()}, meta={})
    fit, test = fake.split_indices(0.2, seed=1)
    assert len(test) == 2 and not set(fit) & set(test) and len(fit) + len(test) == 10
    with pytest.raises(ValueError, match="test_fraction"):
        data.split_indices(1.0)


def test_segment_longer_than_an_episode_autoresets():
    data = collect_probe_data(episodes=1, length=130, size=16, seed=2, cache_dir=None)
    first, last = data.train["is_first"][0], data.train["is_last"][0]
    assert np.flatnonzero(first).tolist() == [0, 126] and np.flatnonzero(last).tolist() == [125]
    assert data.train["reward"][0, 126] == 0.0 and data.meta["env_episodes"] == 1 + 1
    ids = data.meta["intervention_ids"]["heldout"][0]
    assert len(ids) == 2 and all("heldout" in i for i in ids)
    np.testing.assert_array_equal(data.train["depth"], data.heldout["depth"])


def test_bad_arguments_name_the_values():
    with pytest.raises(ValueError, match="episodes=0"):
        collect_probe_data(episodes=0, cache_dir=None)
    with pytest.raises(TypeError, match="length must be an int"):
        collect_probe_data(length=2.5, cache_dir=None)
