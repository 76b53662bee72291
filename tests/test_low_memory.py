"""--mpl_low_memory computes the same Taylor step as the default one."""

import keras
import numpy as np
import pytest

from mpl_tf import config
from mpl_tf.errors import ConfigError
from mpl_tf.models import registry
from mpl_tf.config import StepConfig
from mpl_tf.training.mpl import MPLModel
from mpl_tf.training.optimizer import make_optimizer

import step_fixtures


def _trainer(low_memory, label, view="strong", model_type="cnn-tiny",
             size=12, recompute_teacher=True, feedback="taylor"):
    # Heavy dropout: a labeling pass with another dropout mask than the
    # taped pass would give other pseudo labels and another student.
    cfg = registry.ModelConfig(model_type, 10, size, dense_dropout_rate=0.7)
    keras.utils.set_random_seed(3)
    teacher, student = registry.build(cfg, "teacher"), registry.build(cfg, "student")
    step = StepConfig(label_smoothing=0.1,
                      weight_decay=1e-3, uda_weight=2.0, uda_threshold=0.0,
                      ema_decay=0.9, mpl_label=label, mpl_label_view=view,
                      mpl_low_memory=low_memory,
                      mpl_recompute_teacher=recompute_teacher,
                      mpl_feedback=feedback, seed=5)
    trainer = MPLModel(step, teacher, student,
                       make_optimizer(0.3, "momentum", "t"),
                       make_optimizer(0.3, "momentum", "s"))
    trainer.build_optimizers()
    return trainer


def _state(trainer):
    return [v.numpy() for net in (trainer.teacher, trainer.student)
            for v in net.trainable_variables + net.non_trainable_variables
            ] + [trainer.baseline.numpy()]


@pytest.mark.parametrize("label,view", [("hard", "strong"),
                                        ("sample", "strong"), ("hard", "weak")])
def test_low_memory_step_equals_the_default_step(label, view):
    rng = np.random.default_rng(0)
    batches = [step_fixtures.batch(rng, b=4, mu=3, size=12) for _ in range(3)]
    default, low = _trainer(False, label, view), _trainer(True, label, view)
    start = _state(default)
    for batch in batches:
        metrics = [t.train_step(batch) for t in (default, low)]
        for key in ("mpl/dot_product", "cross_entropy/student_on_u"):
            np.testing.assert_allclose(float(metrics[0][key]),
                                       float(metrics[1][key]), rtol=1e-5)
    for a, b, s in zip(_state(default), _state(low), start):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    assert any(not np.allclose(a, s) for a, s in zip(_state(low), start))


def test_low_memory_needs_the_taylor_feedback():
    p = config.defaults(dataset_name="digits_50_mpl", output_dir="/tmp/x",
                            mpl_low_memory=True, mpl_feedback="exact",
                            mpl_label="soft")
    with pytest.raises(ConfigError, match="--mpl_low_memory"):
        config.validate(p)


def test_wrn_recomputing_steps_equal_the_plain_step():
    """On WRNs the default step recomputes the teacher's first group in
    backprop and --mpl_low_memory more (training/recompute.py), instead of
    holding those activations: the same bits as holding them all."""
    rng = np.random.default_rng(1)
    batches = [step_fixtures.batch(rng, b=2, mu=2, size=8) for _ in range(2)]
    wrn = {"model_type": "wrn-28-2", "size": 8}
    plain = _trainer(False, "hard", recompute_teacher=False, **wrn)
    trainers = [plain, _trainer(False, "hard", **wrn),
                _trainer(True, "hard", **wrn)]
    assert plain._recomputing_calls() == (None, None)
    assert [[c is None for c in t._recomputing_calls()]
            for t in trainers[1:]] == [[False, True], [False, False]]
    start = _state(plain)
    for batch in batches:
        metrics = [t.train_step(batch) for t in trainers]
        for key in ("mpl/dot_product", "grad_norm/teacher",
                    "grad_norm/student"):
            assert len({float(m[key]) for m in metrics}) == 1, key
    for trainer in trainers[1:]:
        for a, b in zip(_state(plain), _state(trainer)):
            np.testing.assert_array_equal(a, b)
    assert any(not np.allclose(a, s) for a, s in zip(_state(plain), start))


def test_wrn_exact_step_recomputes_the_same_bits():
    """The exact meta-gradient differentiates through the recomputed
    teacher group too (second order in the student, first in the teacher)."""
    batch = step_fixtures.batch(np.random.default_rng(2), b=2, mu=2, size=8)
    plain, recomputing = (
        _trainer(False, "soft", model_type="wrn-28-2", size=8,
                 recompute_teacher=r, feedback="exact") for r in (False, True))
    start = _state(plain)
    for trainer in (plain, recomputing):
        trainer.train_step(batch)
    for a, b in zip(_state(plain), _state(recomputing)):
        np.testing.assert_array_equal(a, b)
    assert any(not np.allclose(a, s) for a, s in zip(_state(plain), start))
