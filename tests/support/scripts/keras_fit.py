"""`fit` of mpl_tf.MetaPseudoLabels in a process of its own (not a test
module; tests/test_keras_api.py runs it).

replicas: 2 logical CPUs (configured before TensorFlow starts, hence the
    separate process). Fits k steps on one device and under a 2-replica
    MirroredStrategy; prints JSON with the largest weight differences, the
    largest log differences and the evaluations.
backup: fits `--epochs` epochs of `--steps_per_epoch` steps with
    keras.callbacks.BackupAndRestore in `--backup_dir`; with
    `--hang_after_epoch=N` it prints HANGING after epoch N's backup and
    waits to be killed. Prints the epochs this process ran as JSON; with
    `--also_straight` then fits a fresh model without backups and adds the
    largest difference between the two models' weights.
"""

import argparse
import json
import os
import sys
import time

# The repository (mpl_tf) and tests/support (the fixtures) on the path.
_SUPPORT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.path.dirname(os.path.dirname(_SUPPORT)), _SUPPORT]

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

if __name__ == "__main__" and "replicas" in sys.argv[1:2]:
    _cpus = tf.config.list_physical_devices("CPU")
    tf.config.set_logical_device_configuration(
        _cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)

import keras  # noqa: E402

import mpl_tf  # noqa: E402
from mpl_tf.data import pipeline  # noqa: E402
from mpl_tf.data.sources import digits  # noqa: E402
from mpl_tf.data.pipeline import TrainInput  # noqa: E402

SIZE = 8


def source():
    return digits.load(30, seed=0, image_size=SIZE)


def network(name, width, sync_bn=False, dropout=0.0):
    """A plain user network: images 0..255 -> logits."""
    layers = [keras.Input((SIZE, SIZE, 3)), keras.layers.Rescaling(1 / 255),
              keras.layers.Conv2D(width, 3, padding="same"),
              keras.layers.BatchNormalization(synchronized=sync_bn),
              keras.layers.ReLU(), keras.layers.GlobalAveragePooling2D()]
    if dropout:
        layers.append(keras.layers.Dropout(dropout))
    layers.append(keras.layers.Dense(10))
    return keras.Sequential(layers, name=name)


def build(strategy, grad_bound, sync_bn=False, dropout=0.0):
    with strategy.scope():
        keras.utils.set_random_seed(0)
        mpl = mpl_tf.MetaPseudoLabels(
            teacher=network("teacher", 8, sync_bn),
            student=network("student", 6, sync_bn, dropout),
            ema_decay=0.9, label_smoothing=0.1, weight_decay=5e-4,
            grad_bound=grad_bound, uda_steps=2, uda_threshold=0.0)
        mpl.compile(
            mpl_tf.reference_optimizer(mpl_tf.WarmupDecay(0.05, 100)),
            # A plain Keras optimizer: its own all-reduce must be off.
            keras.optimizers.SGD(mpl_tf.WarmupDecay(0.05, 100,
                                                    warmup_steps=2),
                                 momentum=0.9))
    return mpl


def state(mpl):
    """name -> array for every weight the step writes."""
    out = {}
    for prefix, net in (("teacher", mpl.teacher), ("student", mpl.student),
                        ("ema", mpl.ema_student)):
        for i, w in enumerate(net.weights):
            out[f"{prefix}/{i}"] = np.asarray(w.numpy())
    for prefix, opt in (("teacher_optimizer", mpl.teacher_optimizer),
                        ("student_optimizer", mpl.student_optimizer)):
        for i, v in enumerate(opt.variables):
            out[f"{prefix}/{i}"] = np.asarray(v.numpy())
    out["baseline"] = np.asarray(mpl.baseline.numpy())
    return out


def max_diff(a, b):
    return {k: float(np.max(np.abs(a[k].astype(np.float64) -
                                   b[k].astype(np.float64)))) for k in a}


def fit_replicas(strategy, args, src):
    mpl = build(strategy, args.grad_bound, sync_bn=True)
    ds = pipeline.source_train_dataset(src, batch_size=8, uda_data=2,
                                        seed=1)
    history = mpl.fit(ds, epochs=args.steps, steps_per_epoch=1, verbose=0)
    evaluation = mpl.evaluate(pipeline.eval_dataset(src.test, batch_size=64),
                              return_dict=True, verbose=0)
    return mpl, history.history, evaluation


def replica_shares(strategy, src):
    """Largest difference between the rows `fit` gives each replica of the
    first batch and the rows TrainInput gives that replica itself."""
    ds = pipeline.source_train_dataset(src, batch_size=8, uda_data=2,
                                        seed=1)
    split = next(iter(strategy.experimental_distribute_dataset(ds)))
    own_input = TrainInput(src, pipeline.augment_config(src), "mpl", 8, 2, 1)
    own = next(iter(strategy.distribute_datasets_from_function(
        own_input.dataset)))
    diff = 0.0
    for key in split:
        for a, b in zip(strategy.experimental_local_results(split[key]),
                        strategy.experimental_local_results(own[key])):
            diff = max(diff, float(np.max(np.abs(
                a.numpy().astype(np.float64) - b.numpy()))))
    return diff


def replicas(args):
    src = source()
    devices = [d.name for d in tf.config.list_logical_devices("CPU")]
    mirrored = tf.distribute.MirroredStrategy(devices)
    one, one_logs, one_eval = fit_replicas(tf.distribute.get_strategy(),
                                           args, src)
    two, two_logs, two_eval = fit_replicas(mirrored, args, src)
    log_diff = {k: max(abs(a - b) / max(abs(a), 1e-3)
                       for a, b in zip(one_logs[k], two_logs[k]))
                for k in one_logs}
    print(json.dumps({
        "max_abs_diff": max_diff(state(one), state(two)),
        "log_rel_diff": log_diff, "logs_one": one_logs, "logs_two": two_logs,
        "eval_one": one_eval, "eval_two": two_eval,
        "replica_share_diff": replica_shares(mirrored, src)}))


class _Hang(keras.callbacks.Callback):
    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            print("HANGING", flush=True)
            time.sleep(600)


class _Epochs(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.seen = []

    def on_epoch_begin(self, epoch, logs=None):
        self.seen.append(epoch)


def fit_with_backup(args, backup_dir, hang_after_epoch=None):
    src = source()
    mpl = build(tf.distribute.get_strategy(), 1e9, dropout=0.3)
    ds = pipeline.source_train_dataset(src, batch_size=8, uda_data=2,
                                        seed=1)
    epochs = _Epochs()
    callbacks = [epochs]
    if backup_dir:
        callbacks.insert(0, keras.callbacks.BackupAndRestore(backup_dir))
    if hang_after_epoch is not None:
        callbacks.append(_Hang(hang_after_epoch))
    mpl.fit(ds, epochs=args.epochs, steps_per_epoch=args.steps_per_epoch,
            callbacks=callbacks, verbose=0)
    return state(mpl), {"epochs": epochs.seen,
                        "step": int(mpl.global_step.numpy())}


def backup(args):
    resumed, resumed_run = fit_with_backup(args, args.backup_dir,
                                           args.hang_after_epoch)
    out = {"resumed": resumed_run}
    if args.also_straight:
        straight, out["straight"] = fit_with_backup(args, None)
        out["max_abs_diff"] = max(max_diff(straight, resumed).values())
    print(json.dumps(out))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["replicas", "backup"])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--grad_bound", type=float, default=1e9)
    parser.add_argument("--backup_dir")
    parser.add_argument("--also_straight", action="store_true")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--steps_per_epoch", type=int, default=2)
    parser.add_argument("--hang_after_epoch", type=int)
    args = parser.parse_args()
    if args.mode == "replicas":
        replicas(args)
    else:
        backup(args)


if __name__ == "__main__":
    main()
