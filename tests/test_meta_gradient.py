"""Properties of the exact meta-gradient's building block, `virtual_step`.

The gradient the teacher receives from a whole `train_step` is checked
against finite differences of an independent objective in
test_train_step_gradients.py.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from step_fixtures import floatx
from mpl_tf import losses
from mpl_tf.training import meta_gradient
from mpl_tf.config import StepConfig
from mpl_tf.training.mpl import MPLModel
from mpl_tf.training.optimizer import make_optimizer

LR = 0.5


def _net(name, seed):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([
        keras.Input((5,)),
        keras.layers.Dense(4, name="d1"),
        keras.layers.BatchNormalization(momentum=0.9, name="bn"),
        keras.layers.Activation("tanh"),
        keras.layers.Dense(3, name="d2"),
    ], name=name)


def _setup(dtype="float64"):
    with floatx(dtype):
        teacher, student = _net("teacher", 1), _net("student", 2)
    cfg = StepConfig(label_smoothing=0.1,
                     weight_decay=1e-2, mpl_label="soft",
                     mpl_feedback="exact")
    trainer = MPLModel(cfg, teacher, student, make_optimizer(0.1, "sgd", "t"),
                       make_optimizer(LR, "sgd", "s"))
    rng = np.random.default_rng(0)
    batch = {"l_images": rng.normal(size=(3, 5)).astype(dtype),
             "l_labels": np.array([0, 2, 1], np.int32),
             "u_weak": rng.normal(size=(6, 5)).astype(dtype),
             "u_strong": rng.normal(size=(6, 5)).astype(dtype)}
    return trainer, batch


def _meta_loss(trainer, batch, cross_entropy=None):
    x_l, x_w, x_s = batch["l_images"], batch["u_weak"], batch["u_strong"]
    logits = trainer.teacher(np.concatenate([x_l, x_w, x_s]), training=True)
    z_s = logits[-len(x_s):]
    targets = losses.smooth(tf.nn.softmax(z_s), trainer.cfg.label_smoothing)
    v = meta_gradient.virtual_step(trainer, targets, x_s, x_l,
                                   batch["l_labels"], LR, 6.0, 3.0)
    return v.meta_loss


def _meta_gradient(trainer, batch):
    with tf.GradientTape() as tape:
        loss = _meta_loss(trainer, batch)
    grads = tape.gradient(loss, trainer.teacher.trainable_variables)
    return [np.zeros(v.shape) if g is None else g.numpy()
            for g, v in zip(grads, trainer.teacher.trainable_variables)]


def _flat(arrays):
    return np.concatenate([a.ravel() for a in arrays])


def test_fused_cross_entropy_would_zero_the_meta_gradient(monkeypatch):
    """The trap of docs/design.md, section 7: prove the check above would catch it."""
    trainer, batch = _setup()
    ours = np.linalg.norm(_flat(_meta_gradient(trainer, batch)))
    monkeypatch.setattr(
        losses, "cross_entropy",
        lambda t, z: tf.nn.softmax_cross_entropy_with_logits(t, z))
    fused = np.linalg.norm(_flat(_meta_gradient(trainer, batch)))
    assert ours > 1e-4
    assert fused < 1e-3 * ours, "the fused op keeps no second-order term"


def test_hard_labels_have_no_pathwise_meta_gradient():
    trainer, batch = _setup()
    x_l, x_w, x_s = batch["l_images"], batch["u_weak"], batch["u_strong"]
    with tf.GradientTape() as tape:
        logits = trainer.teacher(np.concatenate([x_l, x_w, x_s]),
                                 training=True)
        labels = tf.argmax(logits[-len(x_s):], -1)
        targets = tf.one_hot(labels, 3, dtype=tf.float64)
        loss = meta_gradient.virtual_step(trainer, targets, x_s, x_l,
                                          batch["l_labels"], LR, 6.0,
                                          3.0).meta_loss
    grads = tape.gradient(loss, trainer.teacher.trainable_variables)
    assert all(g is None or not np.any(g.numpy()) for g in grads)


@pytest.mark.parametrize("label", ["soft", "hard", "sample"])
def test_exact_train_step_updates_both_networks(label):
    trainer, batch = _setup("float32")
    trainer.cfg = StepConfig(weight_decay=0.0, mpl_feedback="exact",
                             mpl_label=label)
    trainer.build_optimizers()
    t_before = [v.numpy().copy() for v in trainer.teacher.trainable_variables]
    s_before = [v.numpy().copy() for v in trainer.student.trainable_variables]
    bn_before = trainer.student.get_layer("bn").moving_mean.numpy().copy()
    metrics = trainer.train_step(batch)
    assert np.isfinite(float(metrics["mpl/dot_product"]))
    # (A bias right before batch norm has no gradient, so compare kernels.)
    for before, net in ((t_before, trainer.teacher), (s_before, trainer.student)):
        for b, var in zip(before, net.trainable_variables):
            if "kernel" in var.path:
                assert not np.allclose(b, var.numpy()), var.path
    # Batch-norm statistics of the student advance once (from the first call).
    assert not np.allclose(bn_before,
                           trainer.student.get_layer("bn").moving_mean.numpy())
