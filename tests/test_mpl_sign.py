"""The sign of the MPL feedback, on a hand-built case.

The unlabeled image IS the labeled image. If the teacher's pseudo label
equals the true label, the student learning it lowers its labeled loss
(feedback h > 0) and the teacher must make that label MORE likely than
its supervised+UDA update alone would. If the pseudo label is wrong, h < 0
and the teacher must make it LESS likely.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from mpl_tf.config import StepConfig
from mpl_tf.training.mpl import MPLModel
from mpl_tf.training.optimizer import make_optimizer
from mpl_tf.training.uda import UDAModel

X = np.array([[1.0, -0.5, 0.25, 2.0]], np.float32)


def _linear(name, bias):
    model = keras.Sequential([keras.Input((4,)),
                              keras.layers.Dense(3, name="dense")], name=name)
    model.get_layer("dense").set_weights(
        [np.full((4, 3), 0.1, np.float32) * np.arange(1, 4)[None, :] / 3,
         np.asarray(bias, np.float32)])
    return model


def _one_teacher_update(mode, teacher_bias, true_label, feedback="taylor"):
    cfg = StepConfig(weight_decay=0.0, uda_weight=0.0,
                     uda_threshold=1.0, mpl_feedback=feedback)
    teacher = _linear("teacher", teacher_bias)
    t_opt = make_optimizer(0.5, "sgd", "t")
    if mode == "mpl":
        student = _linear("student", [0.0, 0.0, 0.0])
        model = MPLModel(cfg, teacher, student, t_opt,
                         make_optimizer(1.0, "sgd", "s"))
    else:
        model = UDAModel(cfg, teacher, t_opt)
    model.build_optimizers()
    batch = {"l_images": X, "l_labels": np.array([true_label], np.int32),
             "u_weak": X, "u_strong": X}
    metrics = model.train_step(batch)
    probs = tf.nn.softmax(teacher(X)).numpy()[0]
    return probs, metrics


@pytest.mark.parametrize("feedback", ["taylor", "exact"])
@pytest.mark.parametrize("true_label,helps", [(2, True), (0, False)])
def test_teacher_follows_the_feedback(true_label, helps, feedback):
    """exact + hard labels uses the score-function term (see mpl.py)."""
    # Teacher's argmax on X is class 2 (largest bias and weight column).
    bias = [0.0, 0.0, 1.0]
    p_mpl, metrics = _one_teacher_update("mpl", bias, true_label, feedback)
    p_uda, _ = _one_teacher_update("uda", bias, true_label)
    feedback = float(metrics["mpl/dot_product"])
    if helps:
        assert feedback > 0, "learning the true label must help the student"
        assert p_mpl[2] > p_uda[2] + 1e-6
    else:
        assert feedback < 0, "learning a wrong label must hurt the student"
        assert p_mpl[2] < p_uda[2] - 1e-6


def test_baseline_moves_toward_feedback():
    _, metrics = _one_teacher_update("mpl", [0.0, 0.0, 1.0], 2)
    h = float(metrics["mpl/dot_product"])
    b = float(metrics["mpl/moving_dot_product"])
    np.testing.assert_allclose(b, 0.01 * h, rtol=1e-5)
