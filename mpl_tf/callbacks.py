"""Keras callbacks for `fit` on mpl_tf's models (mpl_tf.MetaPseudoLabels,
UDA, Supervised)."""

import keras

from mpl_tf import config
from mpl_tf import console
from mpl_tf.training import nonfinite

DEFAULT_MAX_NONFINITE_STEPS = config.RunConfig().max_nonfinite_steps


class StopAfterNonFiniteSteps(keras.callbacks.Callback):
    """Stops `fit` once more than `max_steps` steps in a row were skipped
    because a loss, gradient, the feedback or the updated weights were not
    finite: the CLI's --max_nonfinite_steps, with its message. A skipped
    step changes no weight, so the model holds the last good step's
    weights. At each epoch's end it reports, in one line, how many of the
    epoch's steps were skipped and why (`nonfinite/cause`).

    `keras.callbacks.TerminateOnNaN` stops at the first skipped step; this
    one tolerates a few, as long runs need. The counts are read after each
    execution of `steps_per_execution` steps.
    """

    def __init__(self, max_steps=DEFAULT_MAX_NONFINITE_STEPS):
        super().__init__()
        if max_steps < 0:
            raise ValueError(f"max_steps={max_steps}: must be >= 0")
        self.max_steps = max_steps
        self.stopped_at = None
        self.message = None
        self._cause = 0  # the causes of this epoch's skipped steps

    def on_epoch_begin(self, epoch, logs=None):
        self._cause = 0

    def on_train_batch_end(self, batch, logs=None):
        self._cause |= int((logs or {}).get(nonfinite.CAUSE, 0))
        in_a_row = int(self.model.nonfinite_in_a_row.numpy())
        if in_a_row > self.max_steps and self.stopped_at is None:
            self.stopped_at = int(self.model.global_step.numpy())
            self.message = nonfinite.stop_message(
                self.stopped_at, in_a_row, f"max_steps={self.max_steps}",
                self._cause, "lower the learning rates, or set grad_bound")
            console.warn(self.message)
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        skipped = int((logs or {}).get(nonfinite.WINDOW_SKIPPED, 0))
        report = nonfinite.window_report(skipped, self.params.get("steps"),
                                         self._cause)
        if report and self.stopped_at is None:
            console.warn(report)
