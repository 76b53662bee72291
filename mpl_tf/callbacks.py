"""Keras callbacks for `fit` on mpl_tf's models (mpl_tf.MetaPseudoLabels,
UDA, Supervised)."""

from absl import logging
import keras

# The default of --max_nonfinite_steps (tests/test_keras_api.py checks it).
DEFAULT_MAX_NONFINITE_STEPS = 10


class StopAfterNonFiniteSteps(keras.callbacks.Callback):
    """Stops `fit` once more than `max_steps` steps in a row were skipped
    because a loss, gradient or the feedback was not finite: the CLI's
    --max_nonfinite_steps. (A skipped step changes no weight, so the model
    holds the weights of the last good step.)

    `keras.callbacks.TerminateOnNaN` stops at the first skipped step; this
    one tolerates a few, as the reference's long runs need. The count is
    read after each execution of `steps_per_execution` steps.
    """

    def __init__(self, max_steps=DEFAULT_MAX_NONFINITE_STEPS):
        super().__init__()
        if max_steps < 0:
            raise ValueError(f"max_steps={max_steps}: must be >= 0")
        self.max_steps = max_steps
        self.stopped_at = None

    def on_train_batch_end(self, batch, logs=None):
        in_a_row = int(self.model.nonfinite_in_a_row.numpy())
        if in_a_row > self.max_steps:
            self.stopped_at = int(self.model.global_step.numpy())
            logging.warning(
                "step %d: %d steps in a row had a non-finite loss, gradient "
                "or feedback (more than max_steps=%d), so training stopped; "
                "the weights are the last good step's. Lower the learning "
                "rates or set grad_bound.", self.stopped_at, in_a_row,
                self.max_steps)
            self.model.stop_training = True
