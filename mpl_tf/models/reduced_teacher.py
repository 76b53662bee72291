"""Reduced MPL's teacher: a small network on a large teacher's predictions.

The large teacher's class distributions p are computed once (`task_mode=
label`) and stored; the reduced teacher T_r maps log p to calibrated logits

    T_r(log p) = log p + W2 · relu(W1 · log p + b1) + b2,

a residual MLP whose last layer starts at zero, so at the start its
distribution softmax(T_r(log p)) is exactly p. MPL then trains W1, b1, W2,
b2 (a few thousand weights) instead of the large network.
"""

import keras
from keras import ops

# log p is clamped here: a stored float16 probability of 0 would be -inf.
MIN_PROBABILITY = 1e-8


def log_probabilities(probs):
    """log p of stored distributions, clamped; float32 unless float64."""
    if keras.backend.standardize_dtype(probs.dtype) != "float64":
        probs = ops.cast(probs, "float32")
    return ops.log(ops.maximum(probs, MIN_PROBABILITY))


@keras.saving.register_keras_serializable(package="mpl_tf")
class ReducedTeacher(keras.Model):
    """Residual MLP on log-probabilities -> logits (identity at init)."""

    def __init__(self, num_classes, hidden=128, **kwargs):
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.hidden = hidden
        self.inner = keras.layers.Dense(hidden, activation="relu",
                                        name="inner")
        self.outer = keras.layers.Dense(
            num_classes, kernel_initializer="zeros", bias_initializer="zeros",
            name="outer")

    def build(self, input_shape):
        self.inner.build(input_shape)
        self.outer.build((input_shape[0], self.hidden))
        self.built = True

    def call(self, log_probs, training=False):
        del training  # no dropout or batch norm
        log_probs = ops.cast(log_probs, self.compute_dtype)
        return log_probs + self.outer(self.inner(log_probs))

    def get_config(self):
        config = super().get_config()
        config.update(num_classes=self.num_classes, hidden=self.hidden)
        return config


def build_reduced_teacher(num_classes, hidden, name="reduced_teacher"):
    model = ReducedTeacher(num_classes, hidden, name=name)
    model.build((None, num_classes))
    return model
