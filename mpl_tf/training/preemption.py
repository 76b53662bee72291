"""Save and stop cleanly on SIGTERM (spot VMs, Cloud TPU maintenance).

On SIGTERM the loop finishes its running loop of steps (at most
--iterations_per_loop; the host only regains control between loops), saves
a checkpoint at the loop's last step, and stops with exit status 143
(128 + SIGTERM); the same command then resumes from that step. With several
workers, every worker must save the same step (saving is collective), so
the stop request is OR-reduced across workers after every loop.
(tf.distribute's PreemptionCheckpointHandler does the same coordination but
assumes a cluster resolver on every platform and exits the process itself;
this keeps one code path for all strategies.)
"""

import signal
import threading

import tensorflow as tf

from mpl_tf import compat


class Preempted(Exception):
    """Raised after the preemption checkpoint is written."""


class PreemptionWatcher:

    def __init__(self, strategy):
        self.strategy = strategy
        self._requested = False
        self._previous = None
        self._reduce = None
        if compat.is_multi_worker(strategy):
            self._reduce = self._make_reduce()

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._on_sigterm)
        return self

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)
        return False

    def _on_sigterm(self, signum, frame):
        self._requested = True

    def _make_reduce(self):
        strategy = self.strategy

        @tf.function
        def any_worker(flag):
            per_replica = strategy.run(lambda: tf.identity(flag))
            return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica,
                                   axis=None)
        return any_worker

    def requested(self):
        """True on every worker as soon as any worker got SIGTERM."""
        if self._reduce is None:
            return self._requested
        flag = tf.constant(1 if self._requested else 0, tf.int32)
        return bool(self._reduce(flag).numpy() > 0)
