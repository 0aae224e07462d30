"""engine.devices: the forward shards its batch over local devices (4 CPU devices here)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

PROBE = r"""
import json, sys
sys.path.insert(0, {repo!r})
import jax, numpy as np
from data.features import ddevis_stft
from engine import devices
from engine.contract_predictor import ContractPredictor
from engine.forward import make_forward
from models.contract import flax_adapter
from models.registry import build_model

fp = ddevis_stft()
net = build_model("ddevis_cnn", n_classes=10, input_shape=fp.shape, seed=0)
fwd = make_forward(net, floor=fp.floor, max_batch=16)
x = np.random.default_rng(0).normal(-2, 1, (8, *fp.shape)).astype(np.float32)
sharded = fwd.apply(fwd.sharder.weights(fwd.state), fwd.sharder.batch(x))
logits, acts = fwd(x)
real_split = devices.batch_sharding
devices.batch_sharding = lambda n: None          # the same call on one device, for reference
ref_logits, ref_acts = fwd(x)
devices.batch_sharding = real_split
contract = ContractPredictor(flax_adapter(build_model("ddevis_cnn", n_classes=10,
                             input_shape=fp.shape, seed=0), features=fp,
                             labels=[str(d) for d in range(10)], spec="ddevis"))
probs_c, acts_c = contract.run(x)
print(json.dumps({{
    "devices": jax.local_device_count(),
    "logits_devices": len(sharded[0].sharding.device_set),
    "conv1_devices": len(sharded[1]["conv1"].sharding.device_set),
    "for_8": fwd.sharder.devices_for(8), "for_2": fwd.sharder.devices_for(2),
    "logits_err": float(np.max(np.abs(logits - ref_logits))),
    "acts_err": max(float(np.max(np.abs(acts[k] - ref_acts[k]))) for k in ref_acts),
    "contract_err": float(np.max(np.abs(probs_c - np.asarray(jax.nn.softmax(ref_logits))))),
    "small": float(np.max(np.abs(fwd(x[:2])[0] - ref_logits[:2]))),
}}))
"""


def _probe(device_count: int) -> dict:
    env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={device_count}",
           "JAX_PLATFORMS": "cpu"}
    out = subprocess.run([sys.executable, "-c", PROBE.format(repo=str(REPO))], env=env,
                         capture_output=True, text=True, timeout=300, cwd=REPO)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_a_batch_is_split_over_four_devices_with_the_one_device_result():
    r = _probe(4)
    assert r["devices"] == 4
    assert r["logits_devices"] == 4 and r["conv1_devices"] == 4   # the work ran on all four
    assert r["for_8"] == 4 and r["for_2"] == 1                    # 2 does not split over 4
    assert r["logits_err"] < 1e-4 and r["acts_err"] < 1e-4        # same numbers as one device
    assert r["contract_err"] < 1e-5 and r["small"] < 1e-4


def test_one_device_takes_the_unsharded_path():
    r = _probe(1)
    assert r["devices"] == 1 and r["logits_devices"] == 1 and r["for_8"] == 1
    assert r["logits_err"] == 0.0 and r["acts_err"] == 0.0
