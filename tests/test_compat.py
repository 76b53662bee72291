"""Each private Keras/TensorFlow API mpl_tf uses (mpl_tf/compat.py), checked
against the installed versions: an upgrade that moves one fails here."""

import keras
import numpy as np
import tensorflow as tf

from mpl_tf import compat


def _model():
    inner = keras.Sequential([keras.Input((3,)),
                              keras.layers.Dense(4, name="inner_dense"),
                              keras.layers.Dropout(0.5, seed=1)],
                             name="inner")
    inputs = keras.Input((3,))
    x = inner(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    return keras.Model(inputs, keras.layers.Dense(2, name="head")(x)), inner


def test_sublayers_and_their_own_variables():
    model, inner = _model()
    layers = compat.sublayers(model)
    names = {layer.name for layer in layers}
    assert {"inner", "bn", "head", "inner_dense"} <= names  # nested too
    assert model not in layers and model in compat.sublayers(
        model, include_self=True)
    assert compat.own_trainable_variables(inner) == []  # its layers' only
    head = model.get_layer("head")
    assert compat.own_trainable_variables(head) == head.trainable_variables


def test_seed_generator_states_are_dropouts_random_state():
    model, inner = _model()
    dropout = inner.layers[-1]
    states = compat.seed_generator_states(dropout)
    assert len(states) == 1
    before = np.array(states[0].numpy())
    dropout(tf.ones([2, 4]), training=True)
    assert not np.array_equal(before, states[0].numpy())  # a mask drawn


def test_skip_optimizer_all_reduce_replaces_the_hook_apply_calls():
    """`apply` must go through the replaced method (where Keras sums over
    replicas): if an upgrade renames it, our replacement is never called
    and gradients would be summed twice under a strategy."""
    var = tf.Variable(0.0)
    optimizer = compat.skip_optimizer_all_reduce(keras.optimizers.SGD(0.5))
    replaced = optimizer._all_reduce_sum_gradients
    calls = []
    optimizer._all_reduce_sum_gradients = (
        lambda grads_and_vars: calls.append(1) or replaced(grads_and_vars))
    optimizer.build([var])
    optimizer.apply([tf.constant(1.0)], [var])
    assert calls == [1]
    assert float(var.numpy()) == -0.5


def test_is_multi_worker():
    assert not compat.is_multi_worker(tf.distribute.get_strategy())
    assert not compat.is_multi_worker(tf.distribute.MirroredStrategy(
        ["/cpu:0"]))
