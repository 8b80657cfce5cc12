"""SyntheticDataset under a real two-process torchrun (gloo) with DistributedSampler."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).with_name("ddp_synthetic_dataset.py")


def test_each_synthetic_item_goes_to_exactly_one_rank_and_pools_match(tmp_path):
    out = tmp_path / "report.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           str(SCRIPT), str(out)], capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["world"] == 2 and report["num_synthetic"] == 30
    epochs = []
    for ranks in report["epochs"]:
        indices = [i for r in ranks for i in r]
        assert len(indices) == len(set(indices)) == 30, "a synthetic item went to two ranks, or none"
        epochs.append({i: h for r in ranks for i, h in r.items()})
    # Fresh samples each epoch, and within an epoch no two items are the same image.
    assert len(set(epochs[0].values())) == 30
    assert sum(epochs[0][i] == epochs[1][i] for i in epochs[0]) == 0
    # Every rank built the very same pool, byte for byte (else the shards would not fit together).
    for epoch, hashes in enumerate(report["pool_hashes"]):
        assert len(hashes) == 2 and hashes[0] == hashes[1], f"epoch {epoch}: the ranks' pools differ"
    assert report["pool_hashes"][0][0] != report["pool_hashes"][1][0]
    # SyntheticMix folds the rank into its seed: the same seed draws different rows on each rank.
    mixes = report["mix_hashes"]
    assert len(mixes) == 2 and mixes[0] != mixes[1], "SyntheticMix drew the same synthetic rows on both ranks"
