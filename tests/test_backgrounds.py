"""Tests for procedural and folder background distractions."""

from __future__ import annotations

import sys
import time

import numpy as np
import pytest

from recore_dist.envs.backgrounds import (
    NUM_VIDEOS,
    STYLES,
    BackgroundPool,
    folder_split,
    frame_at,
    load_media,
    pingpong_index,
    procedural_video,
    split_seeds,
)

SMALL = {"size": 32, "num_frames": 12}


# ------------------------------------------------------------------ procedural videos


@pytest.mark.parametrize("style", [*STYLES, None])
def test_style_valid_and_deterministic(style):
    a = procedural_video(3, style=style, **SMALL)
    b = procedural_video(3, style=style, **SMALL)
    assert a.dtype == np.uint8 and a.shape == (12, 32, 32, 3)
    assert a.tobytes() == b.tobytes()
    assert a.std() > 1.0  # not a flat colour


@pytest.mark.parametrize("style", [*STYLES, None])
def test_different_seeds_differ(style):
    vids = [procedural_video(s, style=style, **SMALL) for s in range(5)]
    for i in range(len(vids)):
        for j in range(i + 1, len(vids)):
            assert not np.array_equal(vids[i], vids[j])


def test_style_none_uses_several_styles():
    # Seed-picked styles: the 4 styles all appear among a few seeds (output equals explicit style).
    seen = set()
    for s in range(40):
        v = procedural_video(s, size=16, num_frames=2)
        for st in STYLES:
            if np.array_equal(v, procedural_video(s, size=16, num_frames=2, style=st)):
                seen.add(st)
    assert seen == set(STYLES)


@pytest.mark.parametrize("style", STYLES)
def test_motion_is_smooth(style):
    for seed in (0, 1):
        v = procedural_video(seed, size=64, num_frames=60, style=style).astype(np.int16)
        consecutive = np.abs(np.diff(v, axis=0)).mean()
        rng = np.random.default_rng(0)
        i, j = rng.integers(0, 60, 40), rng.integers(0, 60, 40)
        keep = np.abs(i - j) > 10
        random_pairs = np.abs(v[i[keep]] - v[j[keep]]).mean()
        assert consecutive > 0.0  # it moves
        assert consecutive < 0.35 * random_pairs, (consecutive, random_pairs)


def test_size_84_and_longer_video_extends_shorter():
    v = procedural_video(7, size=84, num_frames=20, style="mixed")
    assert v.shape == (20, 84, 84, 3) and v.dtype == np.uint8
    short = procedural_video(7, size=84, num_frames=5, style="mixed")
    np.testing.assert_array_equal(short, v[:5])


def test_every_style_makes_a_full_video():
    # Speed is measured by benchmarks, not asserted in tests (docs/BENCHMARKS.md).
    for style in STYLES:
        video = procedural_video(11, size=64, num_frames=100, style=style)
        assert video.shape == (100, 64, 64, 3) and video.dtype == np.uint8, style


def test_bad_arguments():
    with pytest.raises(ValueError):
        procedural_video(-1)
    with pytest.raises(ValueError):
        procedural_video(0, style="plasma")
    with pytest.raises(ValueError):
        procedural_video(0, num_frames=0)


def test_frame_at_pingpong():
    video = np.arange(4, dtype=np.uint8)[:, None, None, None] * np.ones((1, 2, 2, 3), np.uint8)
    seq = [int(frame_at(video, t)[0, 0, 0]) for t in range(13)]
    assert seq == [0, 1, 2, 3, 2, 1, 0, 1, 2, 3, 2, 1, 0]
    assert int(frame_at(video, 10**9 + 3)[0, 0, 0]) == pingpong_index(4, 10**9 + 3)
    still = video[:1]
    assert all(frame_at(still, t) is not None and pingpong_index(1, t) == 0 for t in range(5))
    with pytest.raises(ValueError):
        frame_at(video, -1)


# ------------------------------------------------------------------ procedural pools


@pytest.mark.parametrize("difficulty", ["easy", "medium", "hard"])
def test_pool_sizes(difficulty):
    for split in ("train", "heldout"):
        pool = BackgroundPool(split, difficulty, **SMALL)
        assert len(pool) == NUM_VIDEOS[difficulty][split] == len(pool.ids) == len(set(pool.ids))
    assert (NUM_VIDEOS["easy"]["train"], NUM_VIDEOS["easy"]["heldout"]) == (4, 4)
    assert (NUM_VIDEOS["medium"]["train"], NUM_VIDEOS["medium"]["heldout"]) == (8, 8)
    assert (NUM_VIDEOS["hard"]["train"], NUM_VIDEOS["hard"]["heldout"]) == (60, 30)


@pytest.mark.parametrize("base_seed", [0, 1, 2, 17, 12345, 2**31 - 1])
@pytest.mark.parametrize("difficulty", ["easy", "medium", "hard"])
def test_train_heldout_disjoint(base_seed, difficulty):
    train = BackgroundPool("train", difficulty, seed=base_seed, **SMALL)
    held = BackgroundPool("heldout", difficulty, seed=base_seed, **SMALL)
    assert not set(train.ids) & set(held.ids)
    assert not set(train.seeds) & set(held.seeds)
    assert len(set(train.seeds)) == len(train) and len(set(held.seeds)) == len(held)
    # Structural guarantee: parity.
    assert all(s % 2 == 0 for s in train.seeds) and all(s % 2 == 1 for s in held.seeds)
    assert all(i.startswith("proc-train-") for i in train.ids)
    assert all(i.startswith("proc-heldout-") for i in held.ids)


def test_seed_streams_are_disjoint_across_many_base_seeds():
    train, held = set(), set()
    for base in range(50):
        train.update(split_seeds(base, "train", 60))
        held.update(split_seeds(base, "heldout", 30))
    assert not train & held


def test_difficulties_share_prefix_and_ids_are_stable():
    easy = BackgroundPool("train", "easy", seed=5, **SMALL)
    hard = BackgroundPool("train", "hard", seed=5, **SMALL)
    assert hard.ids[: len(easy)] == easy.ids
    assert BackgroundPool("train", "easy", seed=5, **SMALL).ids == easy.ids
    assert BackgroundPool("train", "easy", seed=6, **SMALL).ids != easy.ids
    assert easy.ids[0].startswith("proc-train-0000-s")


def test_pool_is_lazy_cached_and_samples():
    pool = BackgroundPool("train", "hard", **SMALL)
    assert pool.num_cached == 0
    v = pool.video(3)
    assert v.shape == (12, 32, 32, 3) and v.dtype == np.uint8
    assert pool.video(3) is v and pool.num_cached == 1
    assert not v.flags.writeable
    np.testing.assert_array_equal(v, procedural_video(pool.seeds[3], **SMALL))
    rng = np.random.default_rng(0)
    for _ in range(5):
        vid_id, video = pool.sample(rng)
        assert vid_id in pool.ids and video.shape == (12, 32, 32, 3)
    assert pool.num_cached <= 6
    with pytest.raises(IndexError):
        pool.video(60)


def test_max_cached_evicts():
    pool = BackgroundPool("heldout", "medium", max_cached=2, **SMALL)
    for i in range(5):
        pool.video(i)
    assert pool.num_cached == 2


def test_static_mode():
    pool = BackgroundPool("heldout", "easy", dynamic=False, size=40)
    v = pool.video(0)
    assert v.shape == (1, 40, 40, 3) and v.dtype == np.uint8
    np.testing.assert_array_equal(frame_at(v, 77), v[0])


# ------------------------------------------------------------------ folder mode


def _png(path, h, w, colour):
    from PIL import Image

    arr = np.zeros((h, w, 3), np.uint8)
    arr[...] = colour
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


def _gif(path, n, size=20):
    from PIL import Image

    frames = [Image.fromarray(np.full((size, size, 3), 40 * k, np.uint8)) for k in range(n)]
    path.parent.mkdir(parents=True, exist_ok=True)
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=50, loop=0)


def _make_flat_folder(root, n_png=6):
    for k in range(n_png):
        _png(root / f"img{k:02d}.png", 30 + k, 50, (10 * k, 100, 200))
    _gif(root / "anim.gif", 5)
    clip = np.random.default_rng(0).integers(0, 255, (7, 24, 36, 3), dtype=np.uint8)
    np.save(root / "clip.npy", clip)
    (root / "notes.txt").write_text("ignored")


def test_load_media_types(tmp_path):
    _png(tmp_path / "a.png", 30, 60, (255, 0, 0))
    v = load_media(tmp_path / "a.png", size=16)
    assert v.shape == (1, 16, 16, 3) and v.dtype == np.uint8
    assert (v[..., 0] == 255).all() and (v[..., 1:] == 0).all()

    _gif(tmp_path / "g.gif", 4)
    g = load_media(tmp_path / "g.gif", size=16)
    assert g.shape == (4, 16, 16, 3)
    assert len(np.unique(g[:, 0, 0, 0])) == 4
    assert load_media(tmp_path / "g.gif", size=16, num_frames=2).shape == (2, 16, 16, 3)

    arr = np.random.default_rng(1).integers(0, 255, (3, 20, 40, 3), dtype=np.uint8)
    np.save(tmp_path / "v.npy", arr)
    n = load_media(tmp_path / "v.npy", size=20)
    np.testing.assert_array_equal(n, arr[:, :, 10:30])  # centre crop, no resize needed
    np.save(tmp_path / "img.npy", arr[0])
    assert load_media(tmp_path / "img.npy", size=8).shape == (1, 8, 8, 3)
    np.savez(tmp_path / "z.npz", video=arr)
    assert load_media(tmp_path / "z.npz", size=8).shape == (3, 8, 8, 3)

    np.save(tmp_path / "bad.npy", arr.astype(np.float32))
    with pytest.raises(ValueError, match="uint8"):
        load_media(tmp_path / "bad.npy")


def test_folder_hash_split(tmp_path):
    _make_flat_folder(tmp_path)
    splits = folder_split(tmp_path)
    train = {rel for rel, _ in splits["train"]}
    held = {rel for rel, _ in splits["heldout"]}
    assert train and held and not train & held
    assert train | held == {f"img{k:02d}.png" for k in range(6)} | {"anim.gif", "clip.npy"}
    # The split of a file depends only on its name: adding files does not move existing ones.
    _png(tmp_path / "zzz_extra.png", 10, 10, (0, 0, 0))
    splits2 = folder_split(tmp_path)
    assert train <= {rel for rel, _ in splits2["train"]}
    assert held <= {rel for rel, _ in splits2["heldout"]}

    pools = {
        s: BackgroundPool(s, "hard", folder=str(tmp_path), size=24) for s in ("train", "heldout")
    }
    assert not set(pools["train"].ids) & set(pools["heldout"].ids)
    assert len(pools["train"]) + len(pools["heldout"]) == 9
    for pool in pools.values():
        for i in range(len(pool)):
            v = pool.video(i)
            assert v.dtype == np.uint8 and v.shape[1:] == (24, 24, 3) and 1 <= v.shape[0] <= 100


def test_folder_two_files_both_splits_nonempty(tmp_path):
    _png(tmp_path / "a.png", 8, 8, (1, 2, 3))
    _png(tmp_path / "b.png", 8, 8, (4, 5, 6))
    splits = folder_split(tmp_path)
    assert len(splits["train"]) == 1 and len(splits["heldout"]) == 1


def test_folder_subfolders_and_difficulty_cap(tmp_path):
    for k in range(10):
        _png(tmp_path / "train" / f"t{k}.png", 40, 40, (k, 0, 0))
    _gif(tmp_path / "heldout" / "h.gif", 3)
    np.save(tmp_path / "heldout" / "h.npy", np.zeros((2, 10, 10, 3), np.uint8))
    train = BackgroundPool("train", "medium", folder=str(tmp_path), size=16)
    held = BackgroundPool("heldout", "medium", folder=str(tmp_path), size=16)
    assert len(train) == 8  # capped at the medium count, first 8 in sorted order
    assert train.ids == [f"file-train-t{k}.png" for k in range(8)]
    assert held.ids == ["file-heldout-h.gif", "file-heldout-h.npy"]
    assert held.video(0).shape == (3, 16, 16, 3)
    assert held.video(1).shape == (2, 16, 16, 3)
    static = BackgroundPool("heldout", "easy", folder=str(tmp_path), size=16, dynamic=False)
    assert static.video(0).shape == (1, 16, 16, 3)
    _, vid = train.sample(np.random.default_rng(3))
    assert vid.shape == (1, 16, 16, 3)


def test_bad_folders(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.*png"):
        BackgroundPool("train", "easy", folder=str(tmp_path / "nope"))
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("x")
    with pytest.raises(ValueError, match="empty.*\\.png"):
        BackgroundPool("train", "easy", folder=str(empty))
    one = tmp_path / "one"
    _png(one / "only.png", 8, 8, (0, 0, 0))
    with pytest.raises(ValueError, match="at least 2"):
        BackgroundPool("train", "easy", folder=str(one))
    half = tmp_path / "half"
    _png(half / "train" / "a.png", 8, 8, (0, 0, 0))
    with pytest.raises(ValueError, match="heldout"):
        BackgroundPool("train", "easy", folder=str(half))
    nohold = tmp_path / "nohold"
    _png(nohold / "train" / "a.png", 8, 8, (0, 0, 0))
    (nohold / "heldout").mkdir()
    with pytest.raises(ValueError, match="no usable files"):
        BackgroundPool("heldout", "easy", folder=str(nohold))


def test_video_file_without_imageio(tmp_path, monkeypatch):
    for name in ("imageio", "imageio.v2", "imageio_ffmpeg"):
        monkeypatch.setitem(sys.modules, name, None)  # makes `import name` raise ImportError
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "clip.mp4").write_bytes(b"\x00" * 16)
    _png(tmp_path / "heldout" / "a.png", 8, 8, (0, 0, 0))
    pool = BackgroundPool("train", "easy", folder=str(tmp_path))  # listing alone does not fail
    assert pool.ids == ["file-train-clip.mp4"]
    with pytest.raises(ImportError, match=r"pip install imageio\[ffmpeg\]"):
        pool.video(0)
    assert BackgroundPool("heldout", "easy", folder=str(tmp_path)).video(0).shape == (1, 64, 64, 3)
