"""Exponential moving average of a network's weights in a twin network.

Both trainable weights and batch-norm statistics are averaged, so the EMA
network is a consistent model to evaluate and export.
"""

import tensorflow as tf


def update(ema_model, model, decay):
    for ema_w, w in zip(ema_model.weights, model.weights):
        d = tf.cast(decay, ema_w.dtype)
        value = tf.cast(w.value, ema_w.dtype)
        ema_w.assign(d * ema_w.value + (1.0 - d) * value)


def copy(ema_model, model):
    for ema_w, w in zip(ema_model.weights, model.weights):
        ema_w.assign(w.value)
