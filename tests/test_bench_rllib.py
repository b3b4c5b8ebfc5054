"""RLlib's own DreamerV3 learner can be timed in-process (no Ray cluster) on a small batch."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

# Every parameter of RLlib 2.60's DreamerV3TorchRLModule at model_size="XS" for 64x64x3 frames
# and a 1-dim Box action (EMA critic copy included); independent of batch size and length.
XS_PARAMS = 8_982_053


@pytest.mark.slow
def test_rllib_dreamerv3_small_update():
    lazy = subprocess.run([sys.executable, "-c", "import sys, recore_dist.bench.rllib_dreamer; print('ray' in sys.modules)"],
                          capture_output=True, text=True, timeout=120)
    assert lazy.stdout.split() == ["False"], lazy.stderr[-2000:]

    cmd = [sys.executable, "-m", "recore_dist.bench.rllib_dreamer", "--batch-size", "2", "--length", "8",
           "--threads", "1", "--updates", "1", "--warmup", "1", "--json"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["seconds_per_update"] > 0
    assert report["params"] > 1e6
    assert report["params"] == XS_PARAMS
    assert report["params"] == (report["params_world_model"] + report["params_actor"] + report["params_critic"]
                                + report["params_critic_ema"])
    assert report["params_critic_ema"] == report["params_critic"]
    # The actor's two return-percentile EMA scalars are its only other non-trained parameters.
    assert report["params_trainable"] == report["params"] - report["params_critic_ema"] - 2
    assert (report["model_size"], report["threads"], report["batch_size"], report["length"]) == ("XS", 1, 2, 8)
    assert report["ray_version"].startswith("2.")
