import math

import numpy as np

from mpl_tf import schedules


def lr(s, step):
    return float(s(step))


def test_wait_warmup_cosine_boundaries():
    s = schedules.WarmupDecay(1.0, total_steps=100, warmup_steps=10,
                              wait_steps=20, decay="cosine")
    assert lr(s, 0) == 0.0
    assert lr(s, 19) == 0.0                      # last waiting step
    np.testing.assert_allclose(lr(s, 20), 0.1)   # first warm-up step: 1/10
    np.testing.assert_allclose(lr(s, 29), 1.0)   # end of warm-up
    np.testing.assert_allclose(lr(s, 30), 1.0)   # cosine starts at the top
    mid = 30 + 35                                # half of the 70 cosine steps
    np.testing.assert_allclose(lr(s, mid), 0.5, atol=1e-6)
    np.testing.assert_allclose(lr(s, 100), 0.0, atol=1e-7)
    np.testing.assert_allclose(lr(s, 150), 0.0, atol=1e-7)


def test_exponential_and_constant():
    s = schedules.WarmupDecay(2.0, 1000, decay="exponential", decay_rate=0.5,
                              decay_steps=10)
    np.testing.assert_allclose(lr(s, 0), 2.0)
    np.testing.assert_allclose(lr(s, 10), 1.0, rtol=1e-6)
    c = schedules.WarmupDecay(0.3, 1000, decay="constant")
    np.testing.assert_allclose(lr(c, 999), 0.3, rtol=1e-6)


def test_schedule_round_trips_through_config():
    s = schedules.WarmupDecay(0.5, 300, 7, 11, "cosine")
    t = schedules.WarmupDecay.from_config(s.get_config())
    for step in (0, 11, 18, 100, 300):
        assert lr(s, step) == lr(t, step)


def test_uda_weight_ramp_and_ema_decay():
    np.testing.assert_allclose(float(schedules.uda_weight(0, 8.0, 100)), 0.0)
    np.testing.assert_allclose(float(schedules.uda_weight(50, 8.0, 100)), 4.0)
    np.testing.assert_allclose(float(schedules.uda_weight(500, 8.0, 100)), 8.0)
    np.testing.assert_allclose(float(schedules.ema_decay(0, 0.995)), 0.1)
    np.testing.assert_allclose(float(schedules.ema_decay(10**6, 0.995)), 0.995)
    assert math.isclose(float(schedules.ema_decay(90, 0.995)), 91 / 100,
                        rel_tol=1e-6)
