"""The MPL feedback h = CE_old - CE_new, measured as a pair (docs/design.md, section 1).

With the student's learning rate at 0 the student does not move, so a
measurement of its step must read exactly 0, with dropout and batch norm on.
"""


import numpy as np
import pytest

import step_fixtures as fx

MPL_MODES = ("taylor", "taylor_sample", "taylor_low_memory", "exact_soft",
             "exact_hard")


def _feedbacks(mode, pairing, steps=3, wait=100):
    model = fx.trainer(mode, student_wait=wait, pairing=pairing)
    rng = np.random.default_rng(1)
    out = []
    for _ in range(steps):
        m = model.train_step(fx.batch(rng))
        out.append((float(m["mpl/feedback"]), float(m["lr/student"]),
                    float(m["mpl/labeled_loss_before"])))
    return out


@pytest.mark.parametrize("mode", MPL_MODES)
def test_paired_feedback_is_exactly_zero_while_the_student_waits(mode):
    for h, lr, before in _feedbacks(mode, "paired"):
        assert lr == 0.0
        assert before > 0.0
        assert h == 0.0, f"h = {h!r} with the student's lr at 0"


@pytest.mark.parametrize("mode", ["taylor", "exact_soft"])
def test_reference_pairing_measures_noise_while_the_student_waits(mode):
    """The published measurement: CE_old from the joint training pass, so h
    is not 0 although the student did not move (what the pairing removes)."""
    hs = [h for h, _, _ in _feedbacks(mode, "reference")]
    assert all(h != 0.0 for h in hs), hs


@pytest.mark.parametrize("mode", ["taylor", "exact_soft"])
def test_paired_feedback_moves_once_the_student_learns(mode):
    hs = [h for h, lr, _ in _feedbacks(mode, "paired", wait=0)]
    assert all(np.isfinite(hs)) and any(h != 0.0 for h in hs), hs


def test_an_unknown_pseudo_label_mode_is_an_error():
    from mpl_tf.training.mpl import pseudo_labels
    with pytest.raises(ValueError, match="'soft'"):
        pseudo_labels(np.zeros((2, 3), np.float32), "soft")
