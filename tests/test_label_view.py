"""--mpl_label_view: which of the teacher's views labels the student."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from mpl_tf.models import registry
from mpl_tf.config import StepConfig
from mpl_tf.training.mpl import MPLModel
from mpl_tf.training.optimizer import make_optimizer
from mpl_tf.training.uda import teacher_images

SIZE = 12


def _trainer(view, feedback, label, low_memory=False):
    # No dropout: the teacher's taped pass then gives the logits of a plain
    # training-mode forward on the same batch (batch-norm batch statistics).
    cfg = registry.ModelConfig("cnn-tiny", 10, SIZE, dense_dropout_rate=0.0)
    keras.utils.set_random_seed(1)
    step = StepConfig(weight_decay=0.0, uda_weight=1.0, uda_threshold=0.0, mpl_label=label,
                      mpl_feedback=feedback, mpl_label_view=view,
                      mpl_low_memory=low_memory)
    trainer = MPLModel(step, registry.build(cfg, "teacher"),
                       registry.build(cfg, "student"),
                       make_optimizer(0.1, "momentum", "t"),
                       make_optimizer(0.1, "momentum", "s"))
    trainer.build_optimizers()
    return trainer


@pytest.mark.parametrize("feedback,label,low_memory", [
    ("taylor", "hard", False), ("taylor", "hard", True),
    ("exact", "hard", False), ("exact", "soft", False)])
@pytest.mark.parametrize("view", ["strong", "weak"])
def test_pseudo_labels_are_the_teachers_argmax_on_the_chosen_view(
        view, feedback, label, low_memory):
    rng = np.random.default_rng(0)
    img = lambda n: rng.uniform(0, 255, (n, SIZE, SIZE, 3)).astype(np.float32)
    batch = {"l_images": img(4), "l_labels": rng.integers(0, 10, 4, np.int32),
             "u_weak": img(16), "u_strong": img(16)}
    trainer = _trainer(view, feedback, label, low_memory)
    # The teacher's logits, computed here before the step: one training-mode
    # forward on [x_l, x_w, x_s] at the same weights, state discarded.
    logits, _ = trainer.teacher.stateless_call(
        [v.value for v in trainer.teacher.trainable_variables],
        [v.value for v in trainer.teacher.non_trainable_variables],
        teacher_images(batch), training=True)
    z_w, z_s = logits[4:20].numpy(), logits[20:].numpy()
    chosen, other = (z_w, z_s) if view == "weak" else (z_s, z_w)
    assert (chosen.argmax(-1) != other.argmax(-1)).any()  # views disagree
    # `u_labels` are the unlabeled images' true classes: here the argmax we
    # expect, so the logged pseudo-label accuracy is 1 exactly when the step
    # labelled the student's images from the chosen view.
    batch["u_labels"] = chosen.argmax(-1).astype(np.int32)
    metrics = trainer.train_step(batch)
    assert float(metrics["mpl/pseudo_label_accuracy"]) == 1.0
    batch["u_labels"] = other.argmax(-1).astype(np.int32)
    trainer = _trainer(view, feedback, label, low_memory)
    assert float(trainer.train_step(batch)["mpl/pseudo_label_accuracy"]) < 1.0


def test_an_unknown_view_is_refused():
    with pytest.raises(ValueError, match="mpl_label_view"):
        _trainer("both", "taylor", "hard").train_step({
            "l_images": tf.zeros([2, SIZE, SIZE, 3]),
            "l_labels": tf.zeros([2], tf.int32),
            "u_weak": tf.zeros([4, SIZE, SIZE, 3]),
            "u_strong": tf.zeros([4, SIZE, SIZE, 3])})


def test_a_label_threshold_no_image_reaches_leaves_the_student_alone():
    """--mpl_label_threshold=1.0: no pseudo label counts, so (without weight
    decay) the student's weights do not move and the teacher's MPL term is
    0: the teacher's step is plain UDA's. At 0 every image counts."""
    import dataclasses

    import step_fixtures as fx

    def step(threshold):
        model = fx.trainer("taylor", dropout=0.0)
        model.cfg = dataclasses.replace(model.cfg, weight_decay=0.0,
                                        mpl_label_threshold=threshold)
        before = [v.numpy() for v in model.student.trainable_variables]
        metrics = model.train_step(fx.batch(np.random.default_rng(3)))
        after = [v.numpy() for v in model.student.trainable_variables]
        moved = any(not np.array_equal(a, b) for a, b in zip(before, after))
        return model, metrics, moved

    _, metrics, moved = step(1.0)
    assert not moved and float(metrics["mpl/label_ratio"]) == 0.0
    assert float(metrics["cross_entropy/student_on_u"]) == 0.0
    _, metrics, moved = step(0.0)
    assert moved and "mpl/label_ratio" not in metrics
