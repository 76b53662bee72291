"""Every hyper-parameter that enters a train step acts, and acts only where
it should: one step from the same start (weights, batch, step 5) with the
default and with a changed value; the teacher, the student, its EMA and the
MPL baseline must differ exactly where the table says. A flag that stops
acting (or leaks into a part it should not touch) fails its row."""

import dataclasses

import keras
import numpy as np
import pytest

import step_fixtures as fx
from mpl_tf.models import registry
from mpl_tf.schedules import WarmupDecay
from mpl_tf.config import StepConfig
from mpl_tf.training.mpl import MPLModel
from mpl_tf.training.optimizer import make_optimizer
from mpl_tf.training.supervised import SupervisedModel
from mpl_tf.training.uda import UDAModel

START = 5  # the step checked: past the UDA ramp's start and the warm-ups'


@dataclasses.dataclass(frozen=True)
class Setting:
    """One run's step configuration, networks and schedules."""

    cfg: StepConfig = StepConfig(
        label_smoothing=0.1, weight_decay=5e-4, grad_bound=5.0,
        uda_weight=1.0, uda_steps=10, uda_temp=0.75, uda_threshold=0.15,
        ema_decay=0.9, mpl_baseline_decay=0.9)
    dropout: float = 0.5
    teacher_lr: float = 0.1
    teacher_warmup: int = 2
    student_lr: float = 0.1
    student_warmup: int = 2
    student_wait: int = 0


def _build(mode, setting):
    mcfg = registry.ModelConfig("cnn-tiny", 10, fx.SIZE,
                                dense_dropout_rate=setting.dropout)
    keras.utils.set_random_seed(0)
    net = lambda name: registry.build(mcfg, name)  # noqa: E731
    teacher_opt = make_optimizer(WarmupDecay(
        setting.teacher_lr, 100, warmup_steps=setting.teacher_warmup),
        "momentum", "t")
    if mode == "supervised":
        model = SupervisedModel(setting.cfg, net("model"), teacher_opt,
                                ema_network=net("ema"))
    elif mode == "uda":
        model = UDAModel(setting.cfg, net("teacher"), teacher_opt,
                         ema_network=net("ema"))
    else:
        student_opt = make_optimizer(WarmupDecay(
            setting.student_lr, 100, warmup_steps=setting.student_warmup,
            wait_steps=setting.student_wait), "momentum", "s")
        model = MPLModel(setting.cfg, net("teacher"), net("student"),
                         teacher_opt, student_opt, ema_network=net("ema"))
    model.compile()
    model.build_optimizers()
    for opt, _ in model.optimizers():
        opt.iterations.assign(START)
    return model


def _parts_after_one_step(mode, setting):
    """{part: [values]} after one step; parts: the trained network(s), the
    EMA, the baseline."""
    model = _build(mode, setting)
    model.train_step(fx.batch(np.random.default_rng(0)))
    parts = {name: [v.numpy() for v in net.variables]
             for name, net in model.networks().items()}
    parts["ema"] = [v.numpy() for v in model.ema_network.variables]
    if hasattr(model, "baseline"):
        parts["baseline"] = [model.baseline.numpy()]
    return parts


def _cfg(**changes):
    return {"cfg": dataclasses.replace(Setting().cfg, **changes)}


T, S, E, BL = "teacher", "student", "ema", "baseline"
EVERYTHING = {T, S, E, BL}
# (mode, what changes, the parts that must differ; all others must not)
ROWS = [
    ("mpl", _cfg(label_smoothing=0.3), EVERYTHING),
    ("mpl", _cfg(weight_decay=5e-2), EVERYTHING),
    ("mpl", _cfg(grad_bound=0.05), EVERYTHING),
    ("mpl", _cfg(uda_weight=4.0), {T}),
    ("mpl", _cfg(uda_temp=0.4), {T}),
    ("mpl", _cfg(uda_threshold=0.5), {T}),
    ("mpl", _cfg(uda_steps=20), {T}),
    ("mpl", _cfg(ema_decay=0.2), {E}),
    ("mpl", _cfg(mpl_baseline_decay=0.5), {T, BL}),
    ("mpl", _cfg(mpl_label="sample"), EVERYTHING),
    ("mpl", _cfg(mpl_label_view="weak"), EVERYTHING),
    ("mpl", _cfg(mpl_label_threshold=0.99), EVERYTHING),
    ("mpl", _cfg(mpl_feedback_pairing="reference"), {T, BL}),
    ("mpl", _cfg(mpl_feedback="exact"), {T, BL}),  # hard labels: same student
    ("mpl", _cfg(mpl_low_memory=True), set()),  # the same numbers, less memory
    ("mpl", {"dropout": 0.1}, EVERYTHING),
    ("mpl", {"teacher_lr": 0.3}, {T}),
    ("mpl", {"teacher_warmup": 20}, {T}),
    ("mpl", {"student_lr": 0.3}, EVERYTHING),
    ("mpl", {"student_warmup": 20}, EVERYTHING),
    ("mpl", {"student_wait": 10}, EVERYTHING),  # lr 0: the student waits
    ("uda", _cfg(uda_temp=0.4), {T, E}),
    ("uda", _cfg(uda_threshold=0.5), {T, E}),
    ("uda", _cfg(label_smoothing=0.3), {T, E}),
    ("uda", _cfg(ema_decay=0.2), {E}),
    ("supervised", _cfg(label_smoothing=0.3), {"model", E}),
    ("supervised", _cfg(weight_decay=5e-2), {"model", E}),
    ("supervised", _cfg(grad_bound=0.05), {"model", E}),
    ("supervised", {"teacher_lr": 0.3}, {"model", E}),
]

_DEFAULTS = {}


def _row_id(row):
    mode, change, _ = row
    values = change.get("cfg")
    if values is not None:
        default = Setting().cfg
        change = {f.name: getattr(values, f.name)
                  for f in dataclasses.fields(values)
                  if getattr(values, f.name) != getattr(default, f.name)}
    return f"{mode}-" + ",".join(f"{k}={v}" for k, v in change.items())


@pytest.mark.parametrize("mode,change,differs", ROWS,
                         ids=[_row_id(r) for r in ROWS])
def test_a_changed_value_moves_exactly_its_parts(mode, change, differs):
    if mode not in _DEFAULTS:
        _DEFAULTS[mode] = _parts_after_one_step(mode, Setting())
    default = _DEFAULTS[mode]
    changed = _parts_after_one_step(mode, Setting(**change))
    moved = {part for part in default if any(
        not np.array_equal(a, b) for a, b in zip(default[part],
                                                 changed[part]))}
    assert moved == differs
