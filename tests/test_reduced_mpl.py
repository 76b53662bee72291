"""Reduced MPL: the reduced teacher, the stored labels, the step, the CLI."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from interrupted_run import checkpoint_tensors, straight_and_killed
from step_fixtures import central_differences, floatx
from mpl_tf import config, main
from mpl_tf.data import teacher_labels
from mpl_tf.errors import ConfigError
from mpl_tf.models.reduced_teacher import ReducedTeacher, build_reduced_teacher
from mpl_tf.schedules import WarmupDecay
from mpl_tf.config import StepConfig
from mpl_tf.training.optimizer import make_optimizer
from mpl_tf.training.reduced_mpl import ReducedMPLModel

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
B, U, K, D = 3, 6, 4, 5       # labeled, unlabeled, classes, input features
EPS, WD, LR_T, LR_S = 0.1, 1e-2, 0.125, 0.25


def _probs(rng, n):
    p = rng.dirichlet(np.ones(K) * 0.7, size=n)
    return p.astype(np.float16).astype(np.float64)


def test_reduced_teacher_starts_as_the_identity_and_round_trips():
    rng = np.random.default_rng(0)
    p = _probs(rng, 7).astype(np.float32)
    net = build_reduced_teacher(K, 16)
    out = keras.ops.softmax(net(np.log(np.maximum(p, 1e-8)))).numpy()
    np.testing.assert_allclose(out, p / p.sum(-1, keepdims=True), rtol=1e-5,
                               atol=1e-7)
    clone = ReducedTeacher.from_config(net.get_config())
    assert (clone.num_classes, clone.hidden) == (K, 16)


def _student(seed):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([
        keras.Input((D,)), keras.layers.Dense(4, name="d1"),
        keras.layers.BatchNormalization(momentum=0.9, name="bn"),
        keras.layers.Activation("tanh"), keras.layers.Dense(K, name="d2")],
        name="student")


def _trainer(feedback="exact", label="soft", dtype="float64"):
    with floatx(dtype):
        teacher = build_reduced_teacher(K, 3)
        student = _student(2)
    # Away from the identity, so every weight of T_r gets a gradient.
    rng = np.random.default_rng(5)
    for v in teacher.trainable_variables:
        v.assign(rng.normal(scale=0.5, size=v.shape))
    cfg = StepConfig(label_smoothing=EPS, weight_decay=WD,
                     mpl_feedback=feedback, mpl_label=label)
    trainer = ReducedMPLModel(
        cfg, teacher, student, make_optimizer(LR_T, "sgd", "t"),
        make_optimizer(WarmupDecay(LR_S, 100, dtype=dtype), "sgd", "s"))
    trainer.compile()
    trainer.build_optimizers()
    return trainer


def _batch(dtype="float64"):
    rng = np.random.default_rng(1)
    return {"l_images": rng.normal(size=(B, D)).astype(dtype),
            "l_labels": np.array([0, 3, 1], np.int32),
            "u_weak": rng.normal(size=(U, D)).astype(dtype),
            "u_strong": rng.normal(size=(U, D)).astype(dtype),
            "l_teacher": _probs(rng, B).astype(dtype),
            "u_teacher": _probs(rng, U).astype(dtype)}


def _ce(targets, logits):
    return -tf.reduce_sum(targets * tf.nn.log_softmax(logits), -1)


def _smooth(y):
    return y * (1 - EPS) + EPS / K


def _objective(trainer, batch):
    """J(phi) = CE(y_l, T_r(log p_l)) + CE(y_l, S(x_l; theta'(phi))),
    theta' = theta - lr_s (grad CE(softmax T_r(log p_u), S(x_s)) + wd theta),
    T_r written out here: log p + W2 relu(W1 log p + b1) + b2."""
    theta = [tf.constant(v.numpy()) for v in trainer.student.trainable_variables]
    frozen = [v.numpy() for v in trainer.student.non_trainable_variables]
    decay = [0.0 if "bn" in v.path else 1.0
             for v in trainer.student.trainable_variables]
    y = tf.one_hot(batch["l_labels"], K, dtype=tf.float64)

    def t_r(phi, p):
        w1, b1, w2, b2 = phi
        logp = np.log(np.maximum(p, 1e-8))
        return logp + tf.nn.relu(logp @ w1 + b1) @ w2 + b2

    def student(weights, x):
        return trainer.student.stateless_call(weights, frozen, x,
                                              training=True)[0]

    def j(phi):
        sup = tf.reduce_mean(_ce(_smooth(y), t_r(phi, batch["l_teacher"])))
        targets = _smooth(tf.nn.softmax(t_r(phi, batch["u_teacher"])))
        with tf.GradientTape() as tape:
            tape.watch(theta)
            s = student(theta, np.concatenate([batch["u_strong"],
                                               batch["l_images"]]))
            loss = tf.reduce_mean(_ce(targets, s[:U]))
        grads = tape.gradient(loss, theta)
        theta2 = [t - LR_S * (g + WD * d * t)
                  for t, g, d in zip(theta, grads, decay)]
        after = tf.reduce_mean(_ce(y, student(theta2, batch["l_images"])))
        return float(sup + after)
    return j


def test_exact_meta_gradient_into_the_reduced_teacher_matches_fd():
    trainer, batch = _trainer(), _batch()
    j = _objective(trainer, batch)
    phi = [v.numpy() for v in trainer.teacher.trainable_variables]
    numeric = central_differences(j, phi)
    trainer.train_step(batch)
    after = [v.numpy() for v in trainer.teacher.trainable_variables]
    # The reduced teacher's weights all take weight decay (no batch norm).
    received = [(a - b) / LR_T - WD * a for a, b in zip(phi, after)]
    flat = lambda xs: np.concatenate([np.ravel(x) for x in xs])
    rel = (np.linalg.norm(flat(received) - flat(numeric))
           / np.linalg.norm(flat(numeric)))
    assert rel <= 1e-6, f"relative error {rel:.2e}"


def test_first_pseudo_labels_are_the_stored_teachers_argmax():
    trainer = ReducedMPLModel(
        StepConfig(weight_decay=0.0, mpl_feedback="taylor", mpl_label="hard"),
        build_reduced_teacher(K, 8), _student(2),
        make_optimizer(0.1, "sgd", "t"), make_optimizer(0.1, "sgd", "s"))
    trainer.build_optimizers()
    batch = _batch("float32")
    batch["u_labels"] = batch["u_teacher"].argmax(-1).astype(np.int32)
    assert float(trainer.train_step(batch)["mpl/pseudo_label_accuracy"]) == 1.0


# --- the command line: teacher, labels, Reduced MPL --------------------------

DATA = ["--dataset_name=digits_30_uda", "--image_size=12",
        "--train_batch_size=8", "--uda_data=2", "--eval_batch_size=600",
        "--num_train_steps=8", "--save_every=4", "--log_every=2",
        "--lr_decay_type=cosine", "--uda_steps=2", "--deterministic"]
STUDENT = ["--model_type=cnn-tiny", "--mpl_student_lr_wait_steps=0",
           "--mpl_student_lr_warmup_steps=2", "--mpl_teacher_lr_warmup_steps=2",
           "--ema_decay=0.9", "--dense_dropout_rate=0.2",
           "--num_train_steps=8", "--save_every=2", "--log_every=1"]


def _cli(*args):
    return [sys.executable, "-m", "mpl_tf.main", *args]


@pytest.fixture(scope="module")
def labels_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("rmpl") / "teacher"
    for extra in ([], ["--task_mode=label"]):
        proc = subprocess.run(_cli(*DATA, "--model_type=cnn-16",
                                   f"--output_dir={out}", *extra),
                              cwd=REPO, capture_output=True, text=True,
                              timeout=600, check=False)
        assert proc.returncode == 0, proc.stderr[-3000:]
    assert "images/s" in proc.stdout
    return out


def _student_params(out, labels, **kw):
    values = dict(dataset_name="digits_30_mpl", image_size=12,
                  train_batch_size=8, uda_data=2, eval_batch_size=600,
                  model_type="cnn-tiny", num_train_steps=4, save_every=2,
                  log_every=2, mpl_student_lr_wait_steps=0,
                  output_dir=str(out), teacher_labels=str(labels))
    values.update(kw)
    return config.defaults(**values)


def test_the_student_run_never_builds_the_large_teacher(labels_dir, tmp_path):
    meta = teacher_labels.read_meta(str(labels_dir))
    assert meta["teacher"]["model_type"] == "cnn-16"
    assert meta["counts"] == {"labeled": 30, "unlabeled": 1197}
    result = main.run(_student_params(tmp_path / "s", labels_dir))
    trainer = result["trainer"]
    assert isinstance(trainer.networks()["reduced_teacher"], ReducedTeacher)
    # Every conv kernel here is the cnn-tiny student's (or its EMA's): no
    # network of the cnn-16 teacher was built.
    students = {id(v) for net in (trainer.student, trainer.ema_network)
                if net is not None for v in net.variables}
    convs = [v for v in trainer.variables if len(v.shape) == 4]
    assert convs and all(id(v) in students for v in convs)
    assert trainer.teacher.count_params() < 5000
    assert os.path.isdir(result["export"])


@pytest.mark.parametrize("change,needle", [
    (dict(seed=3), "seed 0 (this run: 3)"),
    (dict(dataset_name="digits_40_mpl"), "num_labeled 30 (this run: 40)"),
])
def test_a_cache_for_other_images_is_refused(labels_dir, tmp_path, change,
                                              needle):
    with pytest.raises(ConfigError, match="was made for other training"
                       ) as err:
        main.run(_student_params(tmp_path / "s", labels_dir, **change))
    assert needle in str(err.value)
    assert not os.path.exists(tmp_path / "s"), "nothing may be written"


def test_teacher_labels_needs_an_mpl_dataset(labels_dir, tmp_path):
    with pytest.raises(ConfigError, match="--teacher_labels is for Reduced"):
        main.run(_student_params(tmp_path / "s", labels_dir,
                                 dataset_name="digits_30_uda"))


def test_sigkill_and_rerun_is_bit_exact(labels_dir, tmp_path):
    args = ["--dataset_name=digits_30_mpl", f"--teacher_labels={labels_dir}",
            *DATA[1:], *STUDENT, "--mpl_label=sample"]
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    straight_and_killed(lambda out: _cli(*args, f"--output_dir={out}"),
                        straight, killed, REPO, final_step=8)
    prefixes = ("student", "reduced_teacher", "ema", "mpl_", "optimizer")
    a = checkpoint_tensors(straight, prefixes)
    b = checkpoint_tensors(killed, prefixes)
    # The reduced teacher's weights (10 classes -> 128 hidden) are in it
    # (TensorFlow files them under the optimizer, the shorter path to them).
    assert any(v.shape == (10, 128) for v in a.values()), sorted(a)
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    with open(killed / "hparams.json", encoding="utf-8") as f:
        assert json.load(f)["flags"]["teacher_labels"] == str(labels_dir)
