"""Per-replica batches under 2 logical CPU devices (a fresh process).

Logical devices must be configured before TensorFlow starts, so the check
runs in a subprocess: the in-memory pipeline (digits) must split one global
batch over the replicas, and a streamed source (mocked ImageNet, see
test_data_tfds.py) must give each replica global / 2 images.
"""

import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
from tfds_fakes import fake_prepared  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


_TWO_REPLICAS = r"""
import json, sys
import numpy as np
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import tensorflow_datasets as tfds
from mpl_tf import task
from mpl_tf import config
from mpl_tf.data import registry
from mpl_tf.data.pipeline import TrainInput
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
out = {"replicas": strategy.num_replicas_in_sync}

def per_replica(ti):
    ds = strategy.distribute_datasets_from_function(lambda ctx: ti.dataset(ctx))
    batch = next(iter(ds))
    return {k: [t.numpy() for t in strategy.experimental_local_results(v)]
            for k, v in batch.items()}

p = config.defaults(dataset_name="digits_40_mpl", output_dir="/tmp/unused")
s = registry.load_source(p)
ti = TrainInput(s, task.augmentation(p, s), "mpl", 8, 2, seed=0)
parts = per_replica(ti)
whole = next(iter(ti.dataset()))
out["memory_shapes"] = {k: [list(t.shape) for t in v] for k, v in parts.items()}
out["memory_same_global_batch"] = all(
    np.array_equal(np.concatenate(parts[k]), whole[k].numpy())
    for k in ("l_labels", "l_images", "u_weak"))
data_dir = sys.argv[1]
with tfds.testing.mock_data(num_examples=60, data_dir=data_dir):
    p = config.defaults(dataset_name="imagenet_20_mpl", data_dir=data_dir,
                        output_dir="/tmp/unused", image_size=16)
    s = registry.load_source(p)
    ti = TrainInput(s, task.augmentation(p, s), "mpl", 4, 3, seed=0)
    parts = per_replica(ti)
out["stream_shapes"] = {k: [list(t.shape) for t in v] for k, v in parts.items()}
print("RESULT " + json.dumps(out))
"""


def test_per_replica_batches_under_two_cpu_devices(tmp_path):
    data_dir = str(tmp_path)
    fake_prepared(data_dir, "imagenet2012", ["train", "validation"], 60)
    proc = subprocess.run([sys.executable, "-c", _TWO_REPLICAS, data_dir],
                          capture_output=True, text=True, timeout=300,
                          cwd=REPO, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
    out = json.loads(line[-1][len("RESULT "):])
    assert out["replicas"] == 2
    mem = out["memory_shapes"]
    assert mem["l_images"] == [[4, 16, 16, 3]] * 2  # global 8 / 2 replicas
    assert mem["u_weak"] == mem["u_strong"] == [[8, 16, 16, 3]] * 2
    assert out["memory_same_global_batch"], "replicas must split one batch"
    st = out["stream_shapes"]
    assert st["l_images"] == [[2, 16, 16, 3]] * 2
    assert st["l_labels"] == [[2]] * 2
    assert st["u_strong"] == [[6, 16, 16, 3]] * 2
