"""Two whole Taylor `train_step`s in float64 against the step written out
here, independently of mpl_tf's losses, optimizer and schedules:

  teacher forward on [x_l, x_w, x_s] (batch norm in training mode);
  L_sup = mean CE(smooth(y_l), z_l); q = softmax(z_w / T), kept where
  max q >= threshold, L_uda = sum kept CE(q, z_s) / U; lambda(t) = w min(1,
  t / uda_steps); y^ = argmax z_s;
  student: L_S = mean CE(smooth(y^), s_u) on its pass over [x_s, x_l];
  its gradient + weight decay, clipped by global norm, SGD Nesterov 0.9 at
  lr_s(t) (linear warm-up); EMA with min(decay, (t+1)/(t+10));
  h = CE(y_l, S(x_l; theta)) - CE(y_l, S(x_l; theta')) (the same batch-norm
  mode, no dropout), b <- d b + (1 - d) h;
  teacher: gradient of L_sup + lambda L_uda + (h - b) mean CE(y^, z_s),
  + weight decay, clipped, SGD Nesterov 0.9 at a constant lr_t.

Everything is compared to 1e-9: the student's and the teacher's applied
updates (momentum included: two steps), CE_old, CE_new, h, the baseline and
the EMA. Clipping acts (the test checks that it does), so a step that
ignored --grad_bound, dropped --label_smoothing or --uda_temp fails here.
"""

import keras
import numpy as np
import tensorflow as tf

from step_fixtures import floatx
from mpl_tf.schedules import WarmupDecay
from mpl_tf.config import StepConfig
from mpl_tf.training.mpl import MPLModel
from mpl_tf.training.optimizer import make_optimizer

B, U, K = 3, 6, 3
EPS, WD, CLIP = 0.1, 1e-2, 0.6  # label smoothing, weight decay, grad bound
TEMP, THRESHOLD = 0.7, 0.5
UDA_WEIGHT, UDA_STEPS = 2.0, 4
EMA, BASELINE_DECAY = 0.9, 0.8
LR_T = 0.125                      # teacher: constant
LR_S, WARMUP_S = 0.5, 8           # student: linear warm-up over 8 steps
START = 3                         # the global step of the first checked step
# Keras casts SGD's Python-float momentum through float32, also for float64
# weights: 0.9 becomes 0.89999997615814.
MOMENTUM = float(np.float32(0.9))


def _net(name, seed):
    keras.utils.set_random_seed(seed)
    with floatx("float64"):
        return keras.Sequential([
            keras.Input((5,)), keras.layers.Dense(4, name="d1"),
            keras.layers.BatchNormalization(momentum=0.9, name="bn"),
            keras.layers.Activation("tanh"), keras.layers.Dense(K, name="d2"),
        ], name=name)


def _trainer():
    cfg = StepConfig(label_smoothing=EPS, weight_decay=WD, grad_bound=CLIP,
                     uda_weight=UDA_WEIGHT, uda_steps=UDA_STEPS,
                     uda_temp=TEMP, uda_threshold=THRESHOLD, ema_decay=EMA,
                     mpl_baseline_decay=BASELINE_DECAY,
                     mpl_feedback="taylor", mpl_label="hard")
    model = MPLModel(
        cfg, _net("teacher", 1), _net("student", 2),
        make_optimizer(LR_T, "momentum", "t"),
        make_optimizer(WarmupDecay(LR_S, 100, warmup_steps=WARMUP_S,
                                   dtype="float64"), "momentum", "s"),
        ema_network=_net("ema", 3))
    model.compile()
    model.build_optimizers()
    for opt, _ in model.optimizers():
        opt.iterations.assign(START)
    return model


def _batch(seed):
    rng = np.random.default_rng(seed)
    return {"l_images": rng.normal(size=(B, 5)),
            "l_labels": rng.integers(0, K, B).astype(np.int32),
            "u_weak": rng.normal(size=(U, 5)),
            "u_strong": rng.normal(size=(U, 5))}


def _ce(targets, logits):
    return -tf.reduce_sum(targets * tf.nn.log_softmax(logits), -1)


def _one_hot(labels, smoothing=0.0):
    return tf.one_hot(labels, K, dtype=tf.float64) * (1 - smoothing) + \
        smoothing / K


def _decayed(network):
    bn = {id(w) for layer in network.layers
          if isinstance(layer, keras.layers.BatchNormalization)
          for w in layer.trainable_weights}
    return [0.0 if id(v) in bn else 1.0 for v in network.trainable_variables]


class _Network:
    """A network's weights as numpy arrays, moved by our own Nesterov SGD."""

    def __init__(self, network):
        self.network = network
        self.weights = [v.numpy() for v in network.trainable_variables]
        self.frozen = [v.numpy() for v in network.non_trainable_variables]
        self.decay = _decayed(network)
        self.velocity = [np.zeros_like(w) for w in self.weights]
        self.norms = []  # global norm of each applied gradient, pre-clip

    def __call__(self, weights, images):
        return self.network.stateless_call(weights, self.frozen, images,
                                           training=True)[0]

    def apply(self, grads, lr):
        grads = [g.numpy() + WD * d * w
                 for g, w, d in zip(grads, self.weights, self.decay)]
        norm = np.sqrt(sum(np.sum(g * g) for g in grads))
        self.norms.append(norm)
        scale = min(1.0, CLIP / norm)
        for i, g in enumerate(grads):
            g = g * scale
            self.velocity[i] = MOMENTUM * self.velocity[i] - lr * g
            self.weights[i] = (self.weights[i] + MOMENTUM * self.velocity[i]
                               - lr * g)


class _ReferenceStep:
    """The step of the module docstring, from the trainer's start state."""

    def __init__(self, trainer):
        self.teacher = _Network(trainer.teacher)
        self.student = _Network(trainer.student)
        self.ema = [v.numpy() for v in trainer.ema_network.trainable_variables]
        self.baseline = 0.0
        self.t = START

    def __call__(self, b):
        t, teacher, student = self.t, self.teacher, self.student
        phi = [tf.constant(w) for w in teacher.weights]
        with tf.GradientTape(persistent=True) as t_tape:
            t_tape.watch(phi)
            z_l, z_w, z_s = tf.split(teacher(phi, np.concatenate(
                [b["l_images"], b["u_weak"], b["u_strong"]])), [B, U, U])
            sup = tf.reduce_mean(_ce(_one_hot(b["l_labels"], EPS), z_l))
            q = tf.stop_gradient(tf.nn.softmax(z_w / TEMP))
            kept = tf.cast(tf.reduce_max(q, -1) >= THRESHOLD, tf.float64)
            uda = tf.reduce_sum(kept * _ce(q, z_s)) / U
            labels = tf.argmax(z_s, -1)
            mpl_term = tf.reduce_mean(_ce(_one_hot(labels), z_s))
        assert 0 < float(tf.reduce_sum(kept)) < U  # the threshold bites

        theta = [tf.constant(w) for w in student.weights]
        with tf.GradientTape() as s_tape:
            s_tape.watch(theta)
            s_u = student(theta, np.concatenate([b["u_strong"],
                                                 b["l_images"]]))[:U]
            s_loss = tf.reduce_mean(_ce(_one_hot(labels, EPS), s_u))
        y_l = _one_hot(b["l_labels"])
        ce_old = float(tf.reduce_mean(_ce(y_l, student(student.weights,
                                                       b["l_images"]))))
        lr_s = LR_S * min(1.0, (t + 1) / WARMUP_S)
        student.apply(s_tape.gradient(s_loss, theta), lr_s)
        ce_new = float(tf.reduce_mean(_ce(y_l, student(student.weights,
                                                       b["l_images"]))))
        ema_t = min(EMA, (t + 1) / (t + 10))
        self.ema = [ema_t * e + (1 - ema_t) * w
                    for e, w in zip(self.ema, student.weights)]

        h = ce_old - ce_new
        self.baseline = BASELINE_DECAY * self.baseline + \
            (1 - BASELINE_DECAY) * h
        lam = UDA_WEIGHT * min(1.0, t / UDA_STEPS)
        advantage = h - self.baseline
        teacher.apply([a + lam * c + advantage * m for a, c, m in zip(
            *(t_tape.gradient(loss, phi) for loss in (sup, uda, mpl_term)))],
                      LR_T)
        self.t += 1
        return {"mpl/labeled_loss_before": ce_old,
                "mpl/labeled_loss_after": ce_new, "mpl/feedback": h,
                "mpl/baseline": self.baseline}


def _close(actual, expected, what):
    np.testing.assert_allclose(actual, expected, rtol=1e-9, atol=1e-9,
                               err_msg=what)


def test_two_taylor_steps_match_the_step_written_out_in_float64():
    trainer = _trainer()
    assert trainer.teacher.trainable_variables[0].dtype == "float64"
    reference = _ReferenceStep(trainer)
    for seed in (0, 1):
        batch = _batch(seed)
        want = reference(batch)
        got = trainer.train_step(batch)
        assert int(got["nonfinite/cause"]) == 0
        for name, value in want.items():
            _close(float(got[name]), value, name)
        assert want["mpl/feedback"] != 0.0
        _close(float(trainer.baseline.numpy()), reference.baseline,
               "baseline")
        for name, ours, theirs in (
                ("student", trainer.student.trainable_variables,
                 reference.student.weights),
                ("teacher", trainer.teacher.trainable_variables,
                 reference.teacher.weights),
                ("ema", trainer.ema_network.trainable_variables,
                 reference.ema)):
            for var, want_w in zip(ours, theirs):
                _close(var.numpy(), want_w, f"{name} {var.path}")
    norms = reference.student.norms + reference.teacher.norms
    assert any(n > CLIP for n in norms), norms  # clipping acted
