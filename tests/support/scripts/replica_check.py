"""Run k MPL steps on one device and on 2 mirrored CPU replicas; print the
largest weight differences as JSON.

A script, not a test module: logical CPU devices must be configured before
TensorFlow starts, so tests run it in a subprocess.

usage: python tests/replica_check.py --feedback=taylor --steps=3 --grad_bound=0.5
       (--reduced: Reduced MPL, a reduced teacher on stored distributions;
       --low_memory: --mpl_low_memory; --model_type: default cnn-tiny)
"""

import argparse
import json
import os
import sys

# The repository (mpl_tf) and tests/support (the fixtures) on the path.
_SUPPORT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.path.dirname(os.path.dirname(_SUPPORT)), _SUPPORT]

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(
    cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)

import keras  # noqa: E402

from mpl_tf.models import registry  # noqa: E402
from mpl_tf.models.reduced_teacher import build_reduced_teacher  # noqa: E402
from mpl_tf.schedules import WarmupDecay  # noqa: E402
from mpl_tf.config import StepConfig  # noqa: E402
from mpl_tf.training.mpl import MPLModel  # noqa: E402
from mpl_tf.training.optimizer import make_optimizer  # noqa: E402
from mpl_tf.training.reduced_mpl import ReducedMPLModel  # noqa: E402

GLOBAL_B, MU, SIZE = 4, 2, 12


def make_batch(step):
    rng = np.random.default_rng(step)
    images = lambda n: rng.integers(0, 256, (n, SIZE, SIZE, 3)).astype(np.float32)
    probs = lambda n: rng.dirichlet(np.ones(10), n).astype(np.float32)
    return {"l_images": images(GLOBAL_B),
            "l_labels": rng.integers(0, 10, GLOBAL_B).astype(np.int32),
            "u_weak": images(MU * GLOBAL_B), "u_strong": images(MU * GLOBAL_B),
            "l_teacher": probs(GLOBAL_B), "u_teacher": probs(MU * GLOBAL_B)}


def build(strategy, args, sync):
    mcfg = registry.ModelConfig(args.model_type, 10, SIZE,
                                dense_dropout_rate=0.0, sync_batch_norm=sync)
    cfg = StepConfig(label_smoothing=0.1,
                     weight_decay=5e-4, grad_bound=args.grad_bound,
                     uda_weight=1.0, uda_steps=1, uda_threshold=0.0,
                     mpl_feedback=args.feedback, mpl_label=args.label,
                     mpl_low_memory=args.low_memory, ema_decay=0.9)
    with strategy.scope():
        keras.utils.set_random_seed(0)
        if args.reduced:
            teacher, cls = build_reduced_teacher(10, 16), ReducedMPLModel
            # Off the identity, so its whole gradient is compared too.
            for i, v in enumerate(teacher.trainable_variables):
                v.assign(np.random.default_rng(i).normal(
                    scale=0.3, size=v.shape).astype(np.float32))
        else:
            teacher, cls = registry.build(mcfg, "teacher"), MPLModel
        student = registry.build(mcfg, "student")
        ema = registry.build(mcfg, "ema")
        model = cls(
            cfg, teacher, student,
            make_optimizer(WarmupDecay(0.05, 100), "momentum", "t_opt"),
            make_optimizer(WarmupDecay(0.05, 100), "momentum", "s_opt"),
            ema_network=ema)
        model.compile()
        model.build_optimizers()
    return model


def shard(batch, ctx):
    r, n = ctx.replica_id_in_sync_group, ctx.num_replicas_in_sync
    return {k: v[r * len(v) // n:(r + 1) * len(v) // n] for k, v in batch.items()}


def run(strategy, args, sync):
    model = build(strategy, args, sync)

    @tf.function
    def step(batch):
        return strategy.run(model.train_step, args=(batch,))

    norms = []
    for i in range(args.steps):
        batch = make_batch(i)
        if args.float64:
            batch = {k: v.astype(np.float64) if v.dtype == np.float32 else v
                     for k, v in batch.items()}
        if strategy.num_replicas_in_sync > 1:
            batch = strategy.experimental_distribute_values_from_function(
                lambda ctx, b=batch: shard(b, ctx))
        metrics = step(batch)
        first = {k: strategy.experimental_local_results(v)[0]
                 for k, v in metrics.items()}
        norms.append(float(first["grad_norm/teacher"]))
    weights = {name: [w.numpy() for w in net.weights]
               for name, net in model.networks().items()}
    weights["ema"] = [w.numpy() for w in model.ema_network.weights]
    weights["baseline"] = [model.baseline.numpy()]
    return weights, norms


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--feedback", default="taylor")
    parser.add_argument("--label", default="hard")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--grad_bound", type=float, default=1e9)
    parser.add_argument("--reduced", action="store_true")
    parser.add_argument("--model_type", default="cnn-tiny")
    parser.add_argument("--low_memory", action="store_true")
    # float64: tells a replica logic error from float32 rounding, which a
    # deep network (WRN-28) amplifies beyond 1e-5 within a few steps.
    parser.add_argument("--float64", action="store_true")
    args = parser.parse_args()
    if args.float64:
        keras.config.set_floatx("float64")
        keras.mixed_precision.set_dtype_policy("float64")
    devices = [d.name for d in tf.config.list_logical_devices("CPU")]
    one, norms = run(tf.distribute.get_strategy(), args, sync=False)
    two, _ = run(tf.distribute.MirroredStrategy(devices), args, sync=True)
    diffs = {name: max(float(np.max(np.abs(a - b)))
                       for a, b in zip(one[name], two[name]))
             for name in one}
    print(json.dumps({"max_abs_diff": diffs, "teacher_grad_norms": norms}))


if __name__ == "__main__":
    main()
