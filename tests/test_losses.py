import math

import numpy as np
import tensorflow as tf

from mpl_tf import losses


def test_label_smoothed_ce_matches_hand_computation():
    logits = np.array([[2.0, 0.5, -1.0], [0.0, 1.0, 3.0]], np.float32)
    labels = np.array([0, 1])
    eps = 0.15
    expected = 0.0
    for z, y in zip(logits, labels):
        log_p = z - math.log(sum(math.exp(v) for v in z))
        target = [eps / 3 + (1 - eps) * (k == y) for k in range(3)]
        expected += -sum(t * lp for t, lp in zip(target, log_p))
    # Divided by a global batch of 4 (as if another replica held 2 more).
    got = losses.labeled_ce(labels, logits, 4.0, label_smoothing=eps)
    np.testing.assert_allclose(float(got), expected / 4.0, rtol=1e-6)


def test_ce_without_smoothing_is_sparse_ce():
    logits = tf.random.stateless_normal([5, 4], seed=[1, 2])
    labels = tf.constant([0, 3, 1, 1, 2])
    ref = tf.reduce_mean(
        tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))
    np.testing.assert_allclose(float(losses.labeled_ce(labels, logits, 5.0)),
                               float(ref), rtol=1e-6)


def test_uda_mask_and_denominator():
    # Image 0: confident weak view (kept); image 1: flat (masked out).
    weak = np.array([[5.0, 0.0, 0.0], [0.1, 0.0, 0.0]], np.float32)
    strong = np.array([[1.0, 2.0, 0.0], [3.0, 0.0, 0.0]], np.float32)
    temp, threshold = 0.7, 0.6
    loss, mask = losses.uda_consistency(weak, strong, temp, threshold, 8.0)
    q = tf.nn.softmax(weak[0] / temp).numpy()
    log_p = tf.nn.log_softmax(strong[0]).numpy()
    expected = -(q * log_p).sum() / 8.0  # all 8 unlabeled images, not 1
    assert mask.numpy().tolist() == [1.0, 0.0]
    np.testing.assert_allclose(float(loss), expected, rtol=1e-6)


def test_uda_target_has_no_gradient():
    weak = tf.Variable([[1.0, 0.0]])
    strong = tf.Variable([[0.0, 1.0]])
    with tf.GradientTape() as tape:
        loss, _ = losses.uda_consistency(weak, strong, 1.0, 0.0, 1.0)
    g_weak, g_strong = tape.gradient(loss, [weak, strong])
    assert g_weak is None
    assert float(tf.reduce_sum(tf.abs(g_strong))) > 0
