"""Keras callbacks for `fit` on mpl_tf's models (mpl_tf.MetaPseudoLabels,
UDA, Supervised): the command line's stop rule for non-finite steps and its
checkpoints."""

import keras

from mpl_tf import config
from mpl_tf import console
from mpl_tf.training import checkpoint as ckpt_lib
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

    def on_train_batch_end(self, batch, logs=None):
        in_a_row = int(self.model.nonfinite_in_a_row.numpy())
        if nonfinite.too_many(in_a_row, self.max_steps) and \
                self.stopped_at is None:
            self.stopped_at = int(self.model.global_step.numpy())
            self.message = nonfinite.stop_message(
                self.stopped_at, in_a_row, f"max_steps={self.max_steps}",
                int((logs or {}).get(nonfinite.WINDOW_CAUSE, 0)),
                "lower the learning rates, or set grad_bound")
            console.warn(self.message)
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        report = nonfinite.window_report(
            int(logs.get(nonfinite.WINDOW_SKIPPED, 0)),
            self.params.get("steps"), int(logs.get(nonfinite.WINDOW_CAUSE, 0)))
        if report and self.stopped_at is None:
            console.warn(report)


class Checkpoints(keras.callbacks.Callback):
    """The command line's checkpoints, for `fit`: every `every` steps (and
    when training ends) the model's whole step state -- networks, EMA,
    optimizers, MPL baseline, dropout's random state, counters -- is saved
    as `<directory>/checkpoints/ckpt-<step>` (the same writer and names as
    the command line's; `keep` are kept). When training begins, the newest
    one there is restored, so rerunning the same `fit` resumes.
    """

    def __init__(self, directory, every=1000, keep=5):
        super().__init__()
        if every < 1:
            raise ValueError(f"every={every}: must be >= 1")
        self.directory, self.every, self.keep = directory, every, keep
        self.manager = None
        self.restored = None
        self._saved_at = None

    def on_train_begin(self, logs=None):
        if self.manager is None:
            self.manager = ckpt_lib.make_manager(self.model, self.directory,
                                                 self.keep)
        self.restored = ckpt_lib.restore(self.manager)
        self._saved_at = int(self.model.global_step.numpy())

    def on_train_batch_end(self, batch, logs=None):
        step = int(self.model.global_step.numpy())
        if step >= self._saved_at + self.every:
            self._save(step)

    def on_train_end(self, logs=None):
        step = int(self.model.global_step.numpy())
        if step != self._saved_at:
            self._save(step)

    def _save(self, step):
        ckpt_lib.save(self.manager, step)
        self._saved_at = step
