"""Tiny trainers and batches for the train-step tests (not a test module)."""

import contextlib

import keras
import numpy as np

from mpl_tf.models import registry
from mpl_tf.schedules import WarmupDecay
from mpl_tf.config import StepConfig
from mpl_tf.training.mpl import MPLModel
from mpl_tf.training.optimizer import make_optimizer
from mpl_tf.training.supervised import SupervisedModel
from mpl_tf.training.uda import UDAModel

SIZE = 12


@contextlib.contextmanager
def floatx(dtype):
    """Keras builds networks in `dtype` inside this block."""
    old, old_policy = keras.config.floatx(), keras.config.dtype_policy()
    keras.config.set_floatx(dtype)
    keras.config.set_dtype_policy(dtype)
    try:
        yield
    finally:
        keras.config.set_floatx(old)
        keras.config.set_dtype_policy(old_policy)

# name -> StepConfig overrides; "supervised" and "uda" are their own models.
MODES = {
    "supervised": {},
    "uda": {},
    "taylor": dict(mpl_feedback="taylor", mpl_label="hard"),
    "taylor_sample": dict(mpl_feedback="taylor", mpl_label="sample"),
    "taylor_low_memory": dict(mpl_feedback="taylor", mpl_label="hard",
                              mpl_low_memory=True),
    "exact_soft": dict(mpl_feedback="exact", mpl_label="soft"),
    "exact_hard": dict(mpl_feedback="exact", mpl_label="hard"),
}


def central_differences(objective, phi, eps=1e-6):
    """d objective / d phi by central differences, one entry at a time;
    `phi` a list of numpy arrays, `objective(phi)` a float."""
    out = []
    for i, base in enumerate(phi):
        grad = np.zeros_like(base)
        for idx in np.ndindex(base.shape):
            for sign in (1, -1):
                bumped = [p.copy() for p in phi]
                bumped[i][idx] += sign * eps
                grad[idx] += sign * objective(bumped) / (2 * eps)
        out.append(grad)
    return out


def batch(rng, b=4, mu=2, size=SIZE):
    images = lambda n: rng.uniform(0, 255, (n, size, size, 3)).astype(
        np.float32)
    return {"l_images": images(b),
            "l_labels": rng.integers(0, 10, b).astype(np.int32),
            "u_weak": images(mu * b), "u_strong": images(mu * b)}


def trainer(mode, student_wait=0, dropout=0.5, pairing="paired", seed=0,
            teacher_lr=None):
    """cnn-tiny networks (batch norm, dropout) and an EMA, for `mode`.

    The student's learning rate is 0 for `student_wait` steps; the teacher's
    (the only network's, outside MPL) is `teacher_lr` if given, constant."""
    mcfg = registry.ModelConfig("cnn-tiny", 10, SIZE,
                                dense_dropout_rate=dropout)
    cfg = StepConfig(label_smoothing=0.1, weight_decay=5e-4, grad_bound=5.0,
                     uda_weight=1.0, uda_steps=1, uda_threshold=0.0,
                     ema_decay=0.9, mpl_feedback_pairing=pairing, seed=seed,
                     **MODES[mode])
    keras.utils.set_random_seed(seed)
    net = lambda name: registry.build(mcfg, name)
    opt = lambda name, wait=0: make_optimizer(
        WarmupDecay(0.1, 100, warmup_steps=2, wait_steps=wait)
        if teacher_lr is None or name == "s" else teacher_lr, "momentum",
        name)
    if mode == "supervised":
        model = SupervisedModel(cfg, net("model"), opt("o"),
                                ema_network=net("ema"))
    elif mode == "uda":
        model = UDAModel(cfg, net("teacher"), opt("o"), ema_network=net("ema"))
    else:
        model = MPLModel(cfg, net("teacher"), net("student"), opt("t"),
                         opt("s", student_wait), ema_network=net("ema"))
    model.compile()
    model.build_optimizers()
    return model


def all_state(model):
    """Every variable of networks, EMA, optimizers and the MPL baseline,
    collected here (not by the code under test): {path: value}."""
    out = {}
    nets = dict(model.networks())
    if model.ema_network is not None:
        nets["ema"] = model.ema_network
    for name, net in nets.items():
        for v in net.variables:
            out[f"{name}/{v.path}"] = np.array(v.numpy())
    for opt, _ in model.optimizers():
        for v in opt.variables:
            out[f"{opt.name}/{v.path}"] = np.array(v.numpy())
    if hasattr(model, "baseline"):
        out["baseline"] = np.array(model.baseline.numpy())
    return out
