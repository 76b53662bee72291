"""Losses of the MPL step, written for global-batch averaging and for
second-order gradients.

Every loss returns the SUM over this replica's examples divided by the GLOBAL
number of examples, so summing the per-replica values (or their gradients)
over replicas gives the global mean exactly once. Cross-entropy is written as
-sum p * log_softmax(z): TensorFlow's fused softmax-cross-entropy op has no
gradient with respect to its labels' gradient path, which silently zeroes the
exact meta-gradient (docs/design.md, section 7).
"""

import tensorflow as tf


def as_loss_dtype(logits):
    """bfloat16/float16 logits are lifted to float32; float64 stays."""
    if logits.dtype in (tf.float16, tf.bfloat16):
        return tf.cast(logits, tf.float32)
    return logits


def cross_entropy(targets, logits):
    """Per-example CE between target distributions and logits.

    Differentiable with respect to `targets` too (second-order safe).
    """
    logits = as_loss_dtype(logits)
    targets = tf.cast(targets, logits.dtype)
    return -tf.reduce_sum(targets * tf.nn.log_softmax(logits, axis=-1), -1)


def smooth(one_hot, label_smoothing):
    """(1 - eps) * y + eps / K."""
    if not label_smoothing:
        return one_hot
    k = tf.cast(tf.shape(one_hot)[-1], one_hot.dtype)
    return one_hot * (1.0 - label_smoothing) + label_smoothing / k


def labeled_ce(labels, logits, global_size, label_smoothing=0.0,
               weights=None):
    """CE with (optionally smoothed) integer labels, summed / global size;
    `weights` (per example) scale each term, the denominator stays."""
    logits = as_loss_dtype(logits)
    targets = smooth(tf.one_hot(labels, tf.shape(logits)[-1],
                                dtype=logits.dtype), label_smoothing)
    per_example = cross_entropy(targets, logits)
    if weights is not None:
        per_example = tf.cast(weights, per_example.dtype) * per_example
    return tf.reduce_sum(per_example) / tf.cast(global_size, logits.dtype)


def uda_consistency(weak_logits, strong_logits, temperature, threshold,
                    global_size):
    """UDA loss on unlabeled images; returns (loss, the mask: 1 for each
    image kept).

    Target q = softmax(weak / T) with no gradient; an image counts only when
    max q >= threshold; the sum is divided by ALL unlabeled images of the
    global batch, kept or not (the reference's denominator).
    """
    weak_logits = as_loss_dtype(weak_logits)
    targets = tf.stop_gradient(tf.nn.softmax(weak_logits / temperature, -1))
    mask = tf.cast(tf.reduce_max(targets, -1) >= threshold, targets.dtype)
    per_image = cross_entropy(targets, strong_logits)
    loss = tf.reduce_sum(tf.cast(mask, per_image.dtype) * per_image)
    return loss / tf.cast(global_size, per_image.dtype), mask
