"""How much of the MPL feedback h = CE_old - CE_new is measurement noise.

    python benchmarks/feedback_noise.py --flagfile=flags/digits_50_mpl.cfg
    python benchmarks/feedback_noise.py --flagfile=flags/digits_50_mpl.cfg \
        --model_type=cnn-tiny --train_batch_size=8 --num_train_steps=400

Trains the flagfile's MPL run once per --pairings value (same seed, data and
initial weights) and records h at every step. During the student's
learning-rate wait the student does not move, so any h there is noise of
the measurement itself; after it, h mixes the student's real progress with
that noise. Prints mean and standard deviation of h in both phases.
Any mpl_tf flag can be given; --output_dir defaults to a scratch directory.
"""

import os
import dataclasses
import statistics
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from mpl_tf import console  # noqa: E402

console.tensorflow_defaults()  # oneDNN on before TensorFlow loads
from absl import app, flags  # noqa: E402

from mpl_tf import flags as mpl_flags  # noqa: E402
from mpl_tf import config  # noqa: E402

flags.DEFINE_list("pairings", ["paired", "reference"],
                  "--mpl_feedback_pairing values to compare.")
FLAGS = flags.FLAGS


def feedback_trace(params):
    """[(student lr, h)] for every step of one MPL run."""
    import tensorflow as tf

    from mpl_tf import task
    from mpl_tf.data import registry

    strategy = tf.distribute.get_strategy()
    source = registry.load_source(params)
    model = task.build_trainer(params, source, strategy)
    train_input = task.train_input(params, source)
    iterator = iter(strategy.distribute_datasets_from_function(
        lambda ctx: train_input.dataset(ctx, start_step=0)))

    @tf.function
    def step(iterator):
        return strategy.run(model.train_step, args=(next(iterator),))

    trace = []
    for _ in range(params.num_train_steps):
        m = step(iterator)
        trace.append((float(m["lr/student"]), float(m["mpl/feedback"])))
    return trace


def _stats(values):
    if not values:
        return "—", "—", 0
    std = statistics.pstdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):+.4f}", f"{std:.4f}", len(values)


def main(argv):
    del argv
    params = mpl_flags.from_flags()
    if not params.is_set("output_dir"):
        params = dataclasses.replace(
            params, output_dir=tempfile.mkdtemp(prefix="feedback_noise_"))
    params = config.validate(params)
    if params.mode != "mpl":
        raise app.UsageError("give an MPL dataset, e.g. digits_50_mpl")
    print(f"{params.dataset_name}, {params.model_type}, B={params.train_batch_size}, "
          f"mu={params.uda_data}, dropout {params.dense_dropout_rate}, "
          f"{params.num_train_steps} steps, student wait "
          f"{params.mpl_student_lr_wait_steps}, feedback {params.mpl_feedback}"
          f"/{params.mpl_label}, seed {params.seed}\n")
    print("| pairing | h during the wait: mean | std | steps "
          "| h after it: mean | std | steps |")
    print("|---|---|---|---|---|---|---|")
    for pairing in FLAGS.pairings:
        trace = feedback_trace(dataclasses.replace(
            params, mpl_feedback_pairing=pairing))
        wait = [h for lr, h in trace if lr == 0.0]
        after = [h for lr, h in trace if lr > 0.0]
        row = [pairing, *_stats(wait), *_stats(after)]
        print("| " + " | ".join(str(x) for x in row) + " |", flush=True)


if __name__ == "__main__":
    app.run(main)
