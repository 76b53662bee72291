"""What `train_step` does to the teacher, checked in float64 against an
objective written here from docs/design.md, sections 1 and 3, independently of mpl_tf's
losses and of `meta_gradient.virtual_step`.

Exact feedback, soft labels: the teacher descends
  J(phi) = L_sup + lambda(t) L_uda + CE(y_l, S(x_l; theta'(phi))),
  theta'(phi) = theta - eta_s(t) (grad_theta CE(p(phi), S(x_s; theta)) + wd theta),
  p(phi) = smooth(softmax(z_s)),
with the UDA target and mask held constant (they are stop-gradient), batch
norm in training mode everywhere, eta_s(t) the student's CURRENT learning
rate (mid warm-up here, half its base value).
"""

import keras
import numpy as np
import tensorflow as tf

from step_fixtures import central_differences, floatx
from mpl_tf.schedules import WarmupDecay
from mpl_tf.config import StepConfig
from mpl_tf.training.mpl import MPLModel
from mpl_tf.training.optimizer import make_optimizer
from mpl_tf.training.uda import UDAModel

B, U, K = 3, 6, 3             # labeled images, unlabeled images, classes
EPS, WD = 0.1, 1e-2           # label smoothing, weight decay
TEMP, THRESHOLD = 0.7, 0.5    # UDA: 4 of the 6 images pass
STEP = 3                      # the step the checked update runs at
LR_T = 0.125                  # teacher learning rate (constant)
LR_S = 0.25                   # student's: base 0.5, warm-up 8, step 3
LAMBDA = 1.5                  # uda_weight 2 * min(1, 3 / uda_steps 4)


def _net(name, seed):
    keras.utils.set_random_seed(seed)
    with floatx("float64"):
        return keras.Sequential([
            keras.Input((5,)),
            keras.layers.Dense(4, name="d1"),
            keras.layers.BatchNormalization(momentum=0.9, name="bn"),
            keras.layers.Activation("tanh"),
            keras.layers.Dense(K, name="d2"),
        ], name=name)


def _cfg(**kw):
    return StepConfig(label_smoothing=EPS, weight_decay=WD, uda_weight=2.0,
                      uda_steps=4, uda_temp=TEMP, uda_threshold=THRESHOLD,
                      mpl_feedback="exact", mpl_label="soft", **kw)


def _student_schedule():
    return WarmupDecay(0.5, 100, warmup_steps=8, dtype="float64")


def _at_step(trainer):
    trainer.compile()
    trainer.build_optimizers()
    for opt, _ in trainer.optimizers():
        opt.iterations.assign(STEP)
    return trainer


def mpl_trainer(teacher_lr=LR_T, **kw):
    return _at_step(MPLModel(
        _cfg(**kw), _net("teacher", 1), _net("student", 2),
        make_optimizer(teacher_lr, "sgd", "t"),
        make_optimizer(_student_schedule(), "sgd", "s")))


def uda_trainer(teacher_lr=LR_T):
    return _at_step(UDAModel(_cfg(), _net("teacher", 1),
                             make_optimizer(teacher_lr, "sgd", "t")))


def make_batch():
    rng = np.random.default_rng(0)
    return {"l_images": rng.normal(size=(B, 5)),
            "l_labels": np.array([0, 2, 1], np.int32),
            "u_weak": rng.normal(size=(U, 5)),
            "u_strong": rng.normal(size=(U, 5))}


def _ce(targets, logits):
    return -tf.reduce_sum(targets * tf.nn.log_softmax(logits), -1)


def _smooth(y):
    return y * (1 - EPS) + EPS / K


def _decayed(network):
    """1.0 for weights that take weight decay (all but batch norm's)."""
    bn = {id(w) for layer in network.layers
          if isinstance(layer, keras.layers.BatchNormalization)
          for w in layer.trainable_weights}
    return [0.0 if id(v) in bn else 1.0 for v in network.trainable_variables]


class Objective:
    """J(phi) of the module docstring, at the networks' current state."""

    def __init__(self, trainer, batch):
        self.teacher, self.student, self.batch = (trainer.teacher,
                                                  trainer.student, batch)
        self.t_frozen = [v.numpy() for v in self.teacher.non_trainable_variables]
        self.theta = [v.numpy() for v in self.student.trainable_variables]
        self.s_frozen = [v.numpy() for v in self.student.non_trainable_variables]
        self.s_decay = _decayed(self.student)
        z_w = self.teacher_logits(self.phi0())[1]
        self.q = tf.nn.softmax(z_w / TEMP)
        self.mask = tf.cast(tf.reduce_max(self.q, -1) >= THRESHOLD, tf.float64)

    def phi0(self):
        return [v.numpy() for v in self.teacher.trainable_variables]

    def teacher_logits(self, phi):
        b = self.batch
        z, _ = self.teacher.stateless_call(
            phi, self.t_frozen,
            np.concatenate([b["l_images"], b["u_weak"], b["u_strong"]]),
            training=True)
        return tf.split(z, [B, U, U])

    def student_logits(self, theta, images):
        return self.student.stateless_call(theta, self.s_frozen, images,
                                           training=True)[0]

    def parts(self, phi):
        """-> (L_sup, L_uda, CE_old, CE(y_l, S(x_l; theta')), theta')."""
        b = self.batch
        z_l, _, z_s = self.teacher_logits(phi)
        y = tf.one_hot(b["l_labels"], K, dtype=tf.float64)
        sup = tf.reduce_mean(_ce(_smooth(y), z_l))
        uda = tf.reduce_sum(self.mask * _ce(self.q, z_s)) / U
        p = _smooth(tf.nn.softmax(z_s))
        theta = [tf.constant(t) for t in self.theta]
        with tf.GradientTape() as tape:
            tape.watch(theta)
            s = self.student_logits(theta, np.concatenate(
                [b["u_strong"], b["l_images"]]))
            student_loss = tf.reduce_mean(_ce(p, s[:U]))
        grads = tape.gradient(student_loss, theta)
        theta2 = [t - LR_S * (g + WD * d * t)
                  for t, g, d in zip(theta, grads, self.s_decay)]
        before = tf.reduce_mean(_ce(y, self.student_logits(theta,
                                                           b["l_images"])))
        after = tf.reduce_mean(_ce(y, self.student_logits(theta2,
                                                          b["l_images"])))
        return sup, uda, before, after, theta2

    def __call__(self, phi):
        sup, uda, _, after, _ = self.parts(phi)
        return float(sup + LAMBDA * uda + after)

    def meta_loss(self, phi):
        return float(self.parts(phi)[3])

    def finite_differences(self, eps=1e-6):
        return central_differences(self, self.phi0(), eps)


def received_gradient(trainer, batch, teacher_lr=LR_T):
    """What the teacher's plain-SGD step applied, minus its weight decay."""
    phi0 = [v.numpy() for v in trainer.teacher.trainable_variables]
    metrics = trainer.train_step(batch)
    phi1 = [v.numpy() for v in trainer.teacher.trainable_variables]
    grads = [(a - b) / teacher_lr - WD * d * a
             for a, b, d in zip(phi0, phi1, _decayed(trainer.teacher))]
    return grads, metrics


def _flat(arrays):
    return np.concatenate([np.ravel(a) for a in arrays])


def test_teacher_gradient_of_a_train_step_matches_finite_differences():
    trainer, batch = mpl_trainer(), make_batch()
    assert trainer.teacher.trainable_variables[0].dtype == "float64"
    objective = Objective(trainer, batch)
    assert 0 < float(tf.reduce_sum(objective.mask)) < U  # the mask bites
    numeric = _flat(objective.finite_differences())
    received, metrics = received_gradient(trainer, batch)
    received = _flat(received)
    rel = np.linalg.norm(received - numeric) / np.linalg.norm(numeric)
    assert rel <= 1e-6, f"relative error {rel:.2e}"
    assert float(metrics["lr/student"]) == LR_S


def test_train_step_feedback_and_student_update_in_float64():
    """CE_old/CE_new and the student's real step, from the same objective."""
    trainer, batch = mpl_trainer(), make_batch()
    objective = Objective(trainer, batch)
    _, _, before, after, theta2 = objective.parts(objective.phi0())
    metrics = trainer.train_step(batch)
    for name in ("mpl/labeled_loss_before", "mpl/labeled_loss_after",
                 "mpl/feedback"):
        assert metrics[name].dtype == tf.float64, name
    np.testing.assert_allclose(float(metrics["mpl/labeled_loss_before"]),
                               float(before), rtol=1e-12)
    np.testing.assert_allclose(float(metrics["mpl/labeled_loss_after"]),
                               float(after), rtol=1e-12)
    np.testing.assert_allclose(float(metrics["mpl/feedback"]),
                               float(before - after), rtol=1e-9)
    assert float(before - after) != 0.0
    # The real student step here is the same plain SGD step as the virtual one.
    for want, var in zip(theta2, trainer.student.trainable_variables):
        np.testing.assert_allclose(var.numpy(), want.numpy(), rtol=1e-12,
                                   atol=1e-15)


def test_soft_exact_teacher_step_lowers_the_students_post_update_loss():
    """To first order, MPL's teacher step lowers CE(y_l, S(x_l; theta'))
    more than the same step without the meta term (plain UDA)."""
    lr = 1e-3
    mpl, uda, batch = mpl_trainer(lr), uda_trainer(lr), make_batch()
    objective = Objective(mpl, batch)
    start = objective.meta_loss(objective.phi0())
    mpl.train_step(batch)
    uda.train_step(batch)
    with_meta = objective.meta_loss(
        [v.numpy() for v in mpl.teacher.trainable_variables])
    without = objective.meta_loss(
        [v.numpy() for v in uda.teacher.trainable_variables])
    assert with_meta < without, (start, with_meta, without)
    assert with_meta < start
