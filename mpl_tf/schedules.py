"""Learning-rate schedules of the reference, as Keras schedules.

All are functions of the global step (the optimizer's iteration count, which
advances once per training step) and serialise through `get_config`.
"""

import math

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="mpl_tf")
class WarmupDecay(keras.optimizers.schedules.LearningRateSchedule):
    """0 for `wait_steps`, linear warm-up over `warmup_steps`, then decay.

    decay: "cosine" (to 0 at `total_steps`), "exponential" (times
    `decay_rate` every `decay_steps`) or "constant". `dtype`: of the
    returned rate ("float64" for a step checked in float64).
    """

    def __init__(self, base_lr, total_steps, warmup_steps=0, wait_steps=0,
                 decay="cosine", decay_rate=0.97, decay_steps=750,
                 dtype="float32"):
        self.base_lr = float(base_lr)
        self.total_steps = int(total_steps)
        self.warmup_steps = int(warmup_steps)
        self.wait_steps = int(wait_steps)
        self.decay = decay
        self.decay_rate = float(decay_rate)
        self.decay_steps = int(decay_steps)
        self.dtype = dtype

    def __call__(self, step):
        step = tf.cast(step, self.dtype)
        t = step - self.wait_steps  # steps since the wait ended
        warm = tf.minimum(1.0, (t + 1.0) / max(self.warmup_steps, 1))
        if self.warmup_steps == 0:
            warm = tf.ones_like(t)
        after = tf.maximum(t - self.warmup_steps, 0.0)
        if self.decay == "cosine":
            span = max(self.total_steps - self.wait_steps - self.warmup_steps, 1)
            frac = tf.minimum(after / span, 1.0)
            factor = 0.5 * (1.0 + tf.cos(math.pi * frac))
        elif self.decay == "exponential":
            factor = self.decay_rate ** (after / max(self.decay_steps, 1))
        else:
            factor = tf.ones_like(after)
        lr = self.base_lr * warm * factor
        return tf.where(t < 0.0, tf.zeros_like(lr), lr)

    def get_config(self):
        return {"base_lr": self.base_lr, "total_steps": self.total_steps,
                "warmup_steps": self.warmup_steps,
                "wait_steps": self.wait_steps, "decay": self.decay,
                "decay_rate": self.decay_rate, "decay_steps": self.decay_steps,
                "dtype": self.dtype}


def uda_weight(step, weight, ramp_steps, dtype=tf.float32):
    """lambda(t) = weight * min(1, t / ramp_steps), in `dtype`."""
    step = tf.cast(step, dtype)
    return weight * tf.minimum(tf.constant(1.0, dtype),
                               step / max(ramp_steps, 1))


def ema_decay(step, decay, dtype=tf.float32):
    """min(decay, (t + 1) / (t + 10)): a short average early in training,
    in `dtype` (the averaged weights')."""
    step = tf.cast(step, dtype)
    return tf.minimum(tf.constant(decay, dtype), (step + 1.0) / (step + 10.0))
