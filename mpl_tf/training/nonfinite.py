"""The non-finite policy: what a step checks, what a skipped step leaves,
what the user reads, and when a run stops. One definition for the command
line's loop and for Keras' `fit`.

A train step checks its losses, its gradient norms, the MPL feedback and,
after its updates, the global norm of every trained network's weights (a
float32 norm overflows once weights pass ~1e19, so an update that leaves
exploding weights is caught, not only values computed before it). When any
check is not finite on any replica, the step is undone on every replica
(`TrainerModel.train_step`) and its `cause` says which checks failed: a bit
per entry of `CHECKS`, the same on every replica.

`Window` summarises a logging window over its kept steps only and counts
the skipped ones; `window_report` and `stop_message` are the sentences a
user reads; `too_many` is the stop rule.
"""

import keras
import tensorflow as tf

# Every check a step may make, in the order of the cause bits.
CHECKS = ("teacher loss", "teacher gradient", "teacher weights",
          "student loss", "student gradient", "student weights",
          "feedback", "model loss", "model gradient", "model weights",
          "reduced teacher weights")

# The per-step scalar whose mean and spread over a window are logged as
# <name>_window_mean / _window_std (one step's feedback is noisy).
FEEDBACK = "mpl/feedback"
CAUSE = "nonfinite/cause"
SKIPPED = "nonfinite/skipped_steps"
WINDOW_SKIPPED = "nonfinite/window_skipped_steps"
WINDOW_CAUSE = "nonfinite/window_cause"


def bit(check):
    return 1 << CHECKS.index(check)


def describe(cause):
    """'non-finite teacher gradient and teacher weights' for a cause mask."""
    cause = int(cause)
    names = [c for i, c in enumerate(CHECKS) if cause >> i & 1]
    if not names:
        return "non-finite values"
    if len(names) > 1:
        names = [", ".join(names[:-1]), names[-1]]
    return "non-finite " + " and ".join(names)


def window_report(skipped, steps, cause):
    """One plain line about a window's skipped steps, or None."""
    if not skipped:
        return None
    return (f"{skipped} of the last {steps} steps were skipped: "
            f"{describe(cause)}")


def stop_message(step, in_a_row, limit, cause, remedy, checkpoint=None):
    """The line that ends a run after too many skipped steps in a row.

    `limit`: the allowance as the user set it ("--max_nonfinite_steps=10");
    `remedy`: what to change ("lower --lr, or set --grad_bound");
    `checkpoint`: where the last good state was saved (None: not saved)."""
    text = (f"step {step}: {in_a_row} steps in a row were skipped "
            f"({describe(cause)}; more than {limit}). {remedy[0].upper()}"
            f"{remedy[1:]} (NaN or infinite input images can also cause "
            "it)")
    if checkpoint:
        text += (f". The last good state is saved in {checkpoint}; rerun "
                 "with lower values to resume from it")
    return text


def too_many(in_a_row, limit):
    """The stop rule: more than `limit` skipped steps in a row."""
    return int(in_a_row) > int(limit)


class Window(keras.metrics.Metric):
    """One logging window of a run: the mean and spread of the feedback
    over its kept steps (non-finite values left out too), how many steps
    were skipped and why (their causes OR-ed). Updated by every train step;
    the command line's loop starts a new window at each --log_every step,
    `fit` at each epoch (Keras resets a model's metrics).

    Its variables hold the same values on every replica (every update is
    of global values), so a replica reads the window's result locally.
    """

    def __init__(self, feedback=False, name="window"):
        super().__init__(name=name)
        self.feedback = feedback
        new = lambda name, dtype="float32": self.add_variable(  # noqa: E731
            (), "zeros", dtype=dtype, aggregation="only_first_replica",
            name=name)
        self.total, self.squares, self.count = (new("total"), new("squares"),
                                                new("count"))
        self.skipped, self.cause = new("skipped"), new("cause", "int64")

    def update_state(self, feedback, cause):
        skipped = cause > 0
        self.skipped.assign_add(tf.cast(skipped, tf.float32))
        self.cause.assign(tf.bitwise.bitwise_or(self.cause, cause))
        if feedback is None:
            return
        value = tf.cast(feedback, tf.float32)
        good = tf.logical_and(tf.logical_not(skipped),
                              tf.math.is_finite(value))
        value = tf.where(good, value, 0.0)
        self.total.assign_add(value)
        self.squares.assign_add(tf.square(value))
        self.count.assign_add(tf.cast(good, tf.float32))

    def result(self):
        """{WINDOW_SKIPPED, WINDOW_CAUSE, and for MPL the feedback's
        <name>_window_mean and _window_std (NaN with no kept step)}."""
        out = {WINDOW_SKIPPED: tf.identity(self.skipped),
               WINDOW_CAUSE: tf.identity(self.cause)}
        if self.feedback:
            mean = self.total / self.count
            out[f"{FEEDBACK}_window_mean"] = mean
            out[f"{FEEDBACK}_window_std"] = tf.sqrt(tf.maximum(
                self.squares / self.count - tf.square(mean), 0.0))
        return out
