"""A step whose loss, gradient or feedback is not finite changes nothing:
weights, batch-norm statistics, EMA, optimizer slots, MPL baseline. Only
the step counter advances (schedules stay aligned) and the skip is counted.
"""

import numpy as np
import pytest

import step_fixtures as fx

# What a skipped step may change: the optimizers' iteration counts.
MAY_CHANGE = ("/iteration",)


def _may_change(name):
    return name.endswith(MAY_CHANGE)


@pytest.mark.parametrize("mode", list(fx.MODES))
def test_a_nan_batch_mid_run_changes_no_variable(mode):
    model = fx.trainer(mode)
    rng = np.random.default_rng(0)
    for _ in range(2):
        model.train_step(fx.batch(rng))
    before = fx.all_state(model)
    bad = fx.batch(rng)
    bad["l_images"][1, 3, 3, 0] = np.nan  # one pixel of one labeled image
    metrics = model.train_step(bad)
    after = fx.all_state(model)
    assert int(metrics["nonfinite/skipped_steps"]) == 1
    assert int(model.nonfinite_in_a_row.numpy()) == 1
    changed = [k for k in before if not np.array_equal(before[k], after[k])]
    assert changed and all(_may_change(k) for k in changed), changed
    for _ in range(3):
        metrics = model.train_step(fx.batch(rng))
    assert int(model.nonfinite_in_a_row.numpy()) == 0
    assert int(metrics["nonfinite/skipped_steps"]) == 1
    final = fx.all_state(model)
    assert all(np.all(np.isfinite(v)) for v in final.values())
    assert any(not np.array_equal(after[k], final[k]) for k in after
               if "kernel" in k), "training goes on after the skip"
