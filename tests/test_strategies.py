"""Strategy resolution, batch math, and a step with no host-side Python."""

import os
import subprocess
import sys

import pytest
import tensorflow as tf

from mpl_tf import config, distribute
from mpl_tf.errors import ConfigError
from mpl_tf.models import registry
from mpl_tf.config import StepConfig
from mpl_tf.training.mpl import MPLModel
from mpl_tf.training.optimizer import make_optimizer

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _p(**kw):
    return config.defaults(dataset_name="digits_50_mpl", output_dir="/tmp/x",
                           **kw)


def test_resolution(monkeypatch):
    monkeypatch.delenv("COLAB_TPU_ADDR", raising=False)
    monkeypatch.delenv("TPU_NAME", raising=False)
    monkeypatch.setattr(distribute.glob, "glob", lambda pattern: [])
    assert distribute.resolve_name(_p()) == "default"  # CPU-only machine
    assert distribute.resolve_name(_p(num_cpu_replicas=2)) == "mirrored"
    assert distribute.resolve_name(_p(use_tpu=True)) == "tpu"
    assert distribute.resolve_name(_p(strategy="multi_worker")) == "multi_worker"
    monkeypatch.setenv("COLAB_TPU_ADDR", "10.0.0.2:8470")
    assert distribute.resolve_name(_p()) == "tpu"
    assert distribute.resolve_name(_p(strategy="default")) == "default"


def test_multi_worker_needs_tf_config(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ConfigError, match="TF_CONFIG"):
        distribute.make_strategy(_p(strategy="multi_worker"))


class _Replicas:
    num_replicas_in_sync = 4


def test_batch_math():
    distribute.check_batch_sizes(_p(train_batch_size=128,
                                    eval_batch_size=64), _Replicas())
    with pytest.raises(ConfigError, match="--train_batch_size=6 is not "
                       "divisible by the 4 replicas"):
        distribute.check_batch_sizes(_p(train_batch_size=6), _Replicas())


def test_mpl_step_graph_has_no_host_python():
    """TPUs run the step as one XLA program: no py_function in it."""
    mcfg = registry.ModelConfig("cnn-tiny", 10, 12)
    for feedback, label in (("taylor", "hard"), ("taylor", "sample"),
                            ("exact", "soft")):
        model = MPLModel(StepConfig(mpl_feedback=feedback, mpl_label=label,
                                    ema_decay=0.9, weight_decay=1e-4),
                         registry.build(mcfg, "t"), registry.build(mcfg, "s"),
                         make_optimizer(0.1, "momentum", "to"),
                         make_optimizer(0.1, "momentum", "so"),
                         ema_network=registry.build(mcfg, "e"))
        model.build_optimizers()
        img = lambda n: tf.TensorSpec([n, 12, 12, 3], tf.float32)
        spec = {"l_images": img(4), "l_labels": tf.TensorSpec([4], tf.int32),
                "u_weak": img(8), "u_strong": img(8)}
        graph = tf.function(model.train_step).get_concrete_function(spec).graph
        ops = {op.type for op in graph.get_operations()}
        for fn in graph._functions.values():
            ops |= {n.op for n in fn.definition.node_def}
        assert not ops & {"PyFunc", "EagerPyFunc", "PyFuncStateless"}, ops


def _tiny_cli(out, *flags):
    """A tiny digits MPL run on the command line; returns the process."""
    proc = subprocess.run(
        [sys.executable, "-m", "mpl_tf.main", "--dataset_name=digits_30_mpl",
         "--model_type=cnn-tiny", "--image_size=12", "--train_batch_size=8",
         "--uda_data=2", "--eval_batch_size=200", "--log_every=1",
         "--mpl_student_lr_wait_steps=0", f"--output_dir={out}", *flags],
        capture_output=True, text=True, cwd=REPO, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_two_cpu_replicas_train_from_the_cli(tmp_path):
    out = tmp_path / "mirrored"
    proc = _tiny_cli(out, "--num_train_steps=4", "--save_every=2",
                     "--log_every=2",  # loops of 2 steps
                     "--strategy=mirrored", "--num_cpu_replicas=2")
    assert "final (the exported" in proc.stdout
    assert (out / "export" / "saved_model").is_dir()


def test_bfloat16_run_trains_and_exports_float32_outputs(tmp_path):
    out = tmp_path / "bf16"
    _tiny_cli(out, "--num_train_steps=3", "--save_every=3", "--use_bfloat16")
    served = tf.saved_model.load(str(out / "export" / "saved_model"))
    probs = served.signatures["serving_default"](
        images=tf.zeros([2, 12, 12, 3], tf.uint8))["probabilities"]
    assert probs.dtype == tf.float32
    reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(
        str(out / "checkpoints")))
    kinds = reader.get_variable_to_dtype_map()
    assert all(dtype == tf.float32 for name, dtype in kinds.items()
               if name.startswith("student/") and "kernel" in name)
