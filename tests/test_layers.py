"""Our batch norm and leaky ReLU compute what Keras's compute, faster/leaner."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from mpl_tf.models import layers


def _batch_norms(rng, channels=3):
    """Our fused BatchNorm and Keras's, with equal random weights."""
    ours = layers.BatchNorm(momentum=0.9, epsilon=1e-3)
    theirs = keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-3)
    for layer in (ours, theirs):
        layer.build((None, 5, 5, channels))
    weights = [rng.uniform(0.5, 1.5, channels), rng.normal(size=channels),
               rng.normal(size=channels), rng.uniform(0.5, 2.0, channels)]
    ours.set_weights(weights)
    theirs.set_weights(weights)
    return ours, theirs


def _outputs_and_grads(layer, x, training):
    """y, dL/d[x, gamma, beta], and d|dL/dx|^2/d[gamma, beta]."""
    weights = [layer.gamma, layer.beta]
    with tf.GradientTape() as outer:
        with tf.GradientTape() as inner:
            inner.watch(x)
            y = layer(x, training=training)
            loss = tf.reduce_sum(tf.sin(y))
        first = inner.gradient(loss, [x, *weights])
        curvature = tf.reduce_sum(first[0] * first[0])
    return [y, *first, *outer.gradient(curvature, weights)]


def test_fused_batch_norm_matches_keras_values_stats_and_gradients():
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(2.0, 3.0, (4, 5, 5, 3)), tf.float32)
    ours, theirs = _batch_norms(rng)
    before = [v.numpy() for v in ours.non_trainable_weights]
    for training in (True, False):
        a, b = (_outputs_and_grads(layer, x, training) for layer in (ours, theirs))
        for ta, tb in zip(a, b):
            np.testing.assert_allclose(ta, tb, rtol=1e-4, atol=1e-4)
    # Training calls moved the averages alike (biased batch variance).
    for va, vb, v0 in zip(ours.non_trainable_weights,
                          theirs.non_trainable_weights, before):
        np.testing.assert_allclose(va.numpy(), vb.numpy(), rtol=1e-5)
        assert not np.allclose(va.numpy(), v0)


def test_layer_configs_round_trip():
    layer = layers.BatchNorm(fused=False, momentum=0.5)
    clone = layers.BatchNorm.from_config(layer.get_config())
    assert clone.fused is False and clone.momentum == 0.5
    act = layers.LeakyReLU(from_output=False, negative_slope=0.3)
    clone = layers.LeakyReLU.from_config(act.get_config())
    assert clone.from_output is False and clone.negative_slope == 0.3


def test_leaky_relu_matches_keras_to_second_order():
    rng = np.random.default_rng(1)
    x = tf.constant(rng.normal(size=(3, 7)), tf.float32)
    w = tf.Variable(rng.normal(size=(7,)), dtype=tf.float32)
    results = []
    for act in (layers.LeakyReLU(negative_slope=0.2),
                keras.layers.LeakyReLU(negative_slope=0.2)):
        with tf.GradientTape() as outer:
            with tf.GradientTape() as inner:
                inner.watch(x)
                y = act(x * w)
                loss = tf.reduce_sum(y * tf.range(7, dtype=tf.float32))
            dx = inner.gradient(loss, x)
            curvature = tf.reduce_sum(dx * dx)
        results.append((y, dx, outer.gradient(curvature, w)))
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-6)


def test_leaky_relu_backward_reads_the_output_not_the_input():
    layer = layers.LeakyReLU(negative_slope=0.2)

    @tf.function
    def grad(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x)
        return tape.gradient(y, x)

    graph = grad.get_concrete_function(tf.TensorSpec([2, 3])).graph
    grads = [op for op in graph.get_operations() if op.type == "LeakyReluGrad"]
    assert len(grads) == 1
    # The saved tensor is the forward op's output, so the input can be freed.
    assert grads[0].inputs[1].op.type == "LeakyRelu"


class _KerasBatchNormThenLeakyReLU:
    """The reference composition: Keras's batch norm, Keras's leaky ReLU."""

    def __init__(self, bn, slope=0.2):
        self.bn = bn
        self.act = keras.layers.LeakyReLU(negative_slope=slope)
        self.gamma, self.beta = bn.gamma, bn.beta
        self.non_trainable_weights = bn.non_trainable_weights

    def __call__(self, x, training):
        return self.act(self.bn(x, training=training))


# 1.5: a "leaky" ReLU steeper below zero still keeps the sign, so the
# backward's inverse must hold for it too.
@pytest.mark.parametrize("slope", [0.2, 1.5])
def test_batch_norm_leaky_relu_matches_keras_to_second_order(slope):
    rng = np.random.default_rng(2)
    x = tf.constant(rng.normal(2.0, 3.0, (4, 5, 5, 3)), tf.float32)
    ours = layers.BatchNormLeakyReLU(negative_slope=slope, momentum=0.9,
                                     epsilon=1e-3)
    _, theirs = _batch_norms(rng)
    ours.build((None, 5, 5, 3))
    ours.set_weights(theirs.get_weights())
    reference = _KerasBatchNormThenLeakyReLU(theirs, slope)
    for training in (True, False):
        a, b = (_outputs_and_grads(layer, x, training)
                for layer in (ours, reference))
        for name, ta, tb in zip(["y", "dx", "dgamma", "dbeta",
                                 "d2gamma", "d2beta"], a, b):
            np.testing.assert_allclose(ta, tb, rtol=2e-4, atol=2e-4,
                                       err_msg=f"{name} training={training}")
    for va, vb in zip(ours.non_trainable_weights,
                      reference.non_trainable_weights):
        np.testing.assert_allclose(va.numpy(), vb.numpy(), rtol=1e-5)


def test_batch_norm_leaky_relu_backward_keeps_only_its_output():
    layer = layers.BatchNormLeakyReLU(negative_slope=0.2)
    layer.build((None, 4, 4, 3))

    @tf.function
    def grad(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=True)
        return tape.gradient(y, [x, layer.gamma, layer.beta])

    graph = grad.get_concrete_function(tf.TensorSpec([2, 4, 4, 3])).graph
    forward = [op for op in graph.get_operations()
               if op.type == "FusedBatchNormV3"]
    backward = [op for op in graph.get_operations()
                if op.type == "FusedBatchNormGradV3"]
    assert len(forward) == 1 and len(backward) == 1
    # Only forward ops read the input x (the fused op and custom_gradient's
    # bookkeeping); the gradient runs on x recovered from the output.
    x = forward[0].inputs[0]
    assert {c.type for c in x.consumers()} <= {"FusedBatchNormV3", "IdentityN"}
    assert backward[0].inputs[1] is not x
    clone = layers.BatchNormLeakyReLU.from_config(layer.get_config())
    assert clone.recompute and clone.negative_slope == 0.2


def test_a_network_meta_gradient_is_the_same_with_the_recomputing_layer():
    """The exact meta-gradient differentiates the student's gradient with
    respect to its soft targets (which the teacher's weights make): that
    derivative must not change when batch norm + leaky ReLU recompute
    their input in the backward pass."""
    from mpl_tf.models import registry

    rng = np.random.default_rng(3)
    x = tf.constant(rng.uniform(0, 255, (6, 12, 12, 3)), tf.float32)
    w = tf.Variable(rng.normal(size=(6, 10)), dtype=tf.float32)  # "teacher"
    net = registry.build(registry.ModelConfig("cnn-tiny", 10, 12,
                                              dense_dropout_rate=0.0), "s")
    bn_layers = [layer for layer in net.layers
                 if isinstance(layer, layers.BatchNormLeakyReLU)]
    assert bn_layers
    for layer in bn_layers:  # away from the initial scale 1 and shift 0
        layer.gamma.assign(rng.uniform(0.5, 1.5, layer.gamma.shape))
        layer.beta.assign(rng.normal(size=layer.beta.shape))
    results = []
    for recompute in (True, False):
        for layer in bn_layers:
            layer.recompute = recompute
        with tf.GradientTape() as outer:
            with tf.GradientTape() as inner:
                logits, _ = net.stateless_call(
                    [v.value for v in net.trainable_variables],
                    [v.value for v in net.non_trainable_variables], x,
                    training=True)
                loss = tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(
                    tf.nn.softmax(w), logits))
            grads = inner.gradient(loss, net.trainable_variables)
            # A virtual SGD step's effect on a fixed direction.
            meta = tf.add_n([tf.reduce_sum(g * tf.sin(v.value))
                             for g, v in zip(grads, net.trainable_variables)])
        results.append([*grads, outer.gradient(meta, w)])
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5)
