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

Host side, `WindowStats` summarises a logging window over its good steps
only and counts the skipped ones; `window_report` and `stop_message` are the
sentences a user reads.
"""

import math
import statistics

# Every check a step may make, in the order of the cause bits.
CHECKS = ("teacher loss", "teacher gradient", "teacher weights",
          "student loss", "student gradient", "student weights",
          "feedback", "model loss", "model gradient", "model weights",
          "reduced teacher weights")

# Per-step scalars whose mean and spread over a window are logged as
# <name>_window_mean / _window_std (one step's feedback is noisy).
WINDOW_NAMES = ("mpl/feedback",)
CAUSE = "nonfinite/cause"
SKIPPED = "nonfinite/skipped_steps"
WINDOW_SKIPPED = "nonfinite/window_skipped_steps"


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


def _finite(values):
    return [v for v in values if math.isfinite(v)]


class WindowStats:
    """Mean and spread of `WINDOW_NAMES` over one logging window's good
    steps, and how many steps were skipped, with their causes.

    `add` takes one step's metrics (numbers; the loop's rows); `summary`
    ends the window. A step is skipped when its `nonfinite/cause` is not 0;
    its values are left out, and so is any non-finite value of a kept step.
    """

    def __init__(self):
        self._start()

    def _start(self):
        self.values = {name: [] for name in WINDOW_NAMES}
        self.steps = self.skipped = self.cause = 0

    def add(self, metrics):
        self.steps += 1
        cause = int(metrics.get(CAUSE, 0))
        if cause:
            self.skipped += 1
            self.cause |= cause
            return
        for name in WINDOW_NAMES:
            if name in metrics:
                self.values[name].append(float(metrics[name]))

    def report(self):
        """The window's line about skipped steps (None if none)."""
        return window_report(self.skipped, self.steps, self.cause)

    def summary(self):
        """{name_window_mean, name_window_std (when the window has a good
        value), nonfinite/window_skipped_steps}; starts the next window."""
        out = {WINDOW_SKIPPED: float(self.skipped)}
        for name, values in self.values.items():
            seen = _finite(values)
            if seen:
                out[f"{name}_window_mean"] = statistics.fmean(seen)
                out[f"{name}_window_std"] = statistics.pstdev(seen)
        self._start()
        return out
