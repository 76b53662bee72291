"""Train-step checks under 2 mirrored CPU replicas; prints JSON.

A script, not a test module: logical CPU devices must be configured before
TensorFlow starts, so tests run it in a subprocess.

    python tests/step_check.py   # {"replicas", "feedback", "skip"}

feedback: h per replica and step with the student's learning rate at 0.
skip: what a NaN batch changed, per mode.
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# The repository (mpl_tf) and tests/support (the fixtures) on the path.
_SUPPORT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.path.dirname(os.path.dirname(_SUPPORT)), _SUPPORT]

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(
    cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)

import step_fixtures as fx  # noqa: E402


def shard(batch, ctx):
    r, n = ctx.replica_id_in_sync_group, ctx.num_replicas_in_sync
    return {k: v[r * len(v) // n:(r + 1) * len(v) // n]
            for k, v in batch.items()}


def runner(strategy, model):
    @tf.function
    def step(batch):
        return strategy.run(model.train_step, args=(batch,))

    def run(batch):
        dist = strategy.experimental_distribute_values_from_function(
            lambda ctx: shard(batch, ctx))
        return {k: [float(x) for x in strategy.experimental_local_results(v)]
                for k, v in step(dist).items()}
    return run


def feedback(strategy):
    out = {}
    for mode in ("taylor", "taylor_low_memory", "exact_soft"):
        with strategy.scope():
            model = fx.trainer(mode, student_wait=100)
        run, rng = runner(strategy, model), np.random.default_rng(2)
        out[mode] = [run(fx.batch(rng))["mpl/feedback"] for _ in range(2)]
    return {"feedback": out}


# One of each code path (sample/hard labels share theirs with hard/soft).
SKIP_MODES = ("supervised", "uda", "taylor", "taylor_low_memory",
              "exact_soft")


def skip(strategy):
    out = {}
    for mode in SKIP_MODES:
        with strategy.scope():
            model = fx.trainer(mode)
        run, rng = runner(strategy, model), np.random.default_rng(3)
        run(fx.batch(rng))
        before = fx.all_state(model)
        bad = fx.batch(rng)
        bad["l_images"][0, 0, 0, 0] = np.nan
        skipped = run(bad)["nonfinite/skipped_steps"]
        after = fx.all_state(model)
        changed = sorted(k for k in before
                         if not np.array_equal(before[k], after[k]))
        run(fx.batch(rng))
        finite = all(np.all(np.isfinite(v))
                     for v in fx.all_state(model).values())
        out[mode] = {"changed": changed, "skipped": skipped, "finite": finite}
    return {"skip": out}


def main():
    devices = [d.name for d in tf.config.list_logical_devices("CPU")]
    strategy = tf.distribute.MirroredStrategy(devices)
    print(json.dumps({"replicas": strategy.num_replicas_in_sync,
                      **feedback(strategy), **skip(strategy)}))


if __name__ == "__main__":
    main()
