"""What MPL logs to explain itself: teacher beside student at every eval,
pseudo-label accuracy, teacher-student agreement, UDA mask ratio, the
student's labeled loss before/after its step, the feedback's window stats."""

import dataclasses
import json
import math
import os

import numpy as np
import pytest
import tensorflow as tf

import step_fixtures as fx
from mpl_tf import main
from mpl_tf.training.nonfinite import Window
from mpl_tf.training.uda import teacher_images


def _logits(network, images):
    """The network's training-mode logits at its current state (state
    updates dropped), computed here by Keras' own stateless_call."""
    return network.stateless_call(
        [v.value for v in network.trainable_variables],
        [v.value for v in network.non_trainable_variables], images,
        training=True)[0].numpy()


def _with_true_labels(batch, teacher_labels):
    """u_labels: right for the first half, wrong after, two unknown."""
    true = teacher_labels.copy()
    half = len(true) // 2
    true[half:] = (true[half:] + 1) % 10
    true[[0, half]] = -1
    known = true >= 0
    expected = float(np.mean(true[known] == teacher_labels[known]))
    return dict(batch, u_labels=true.astype(np.int32)), expected


@pytest.mark.parametrize("mode", ["taylor", "exact_soft"])
def test_pseudo_label_accuracy_and_agreement(mode):
    model = fx.trainer(mode, dropout=0.0)
    batch = fx.batch(np.random.default_rng(4))
    u = len(batch["u_strong"])
    z_s = _logits(model.teacher, teacher_images(batch))[-u:]
    s_u = _logits(model.student, np.concatenate(
        [batch["u_strong"], batch["l_images"]]))[:u]
    labels = z_s.argmax(-1)
    batch, expected = _with_true_labels(batch, labels)
    assert 0 < expected < 1
    metrics = model.train_step(batch)
    np.testing.assert_allclose(float(metrics["mpl/pseudo_label_accuracy"]),
                               expected, rtol=1e-6)
    np.testing.assert_allclose(
        float(metrics["mpl/teacher_student_agreement"]),
        np.mean(s_u.argmax(-1) == labels), rtol=1e-6)


def test_uda_logs_its_teachers_accuracy_on_unlabeled_images():
    model = fx.trainer("uda", dropout=0.0)
    batch = fx.batch(np.random.default_rng(5))
    u = len(batch["u_weak"])
    z_w = _logits(model.teacher, teacher_images(batch))[-2 * u:-u]
    batch, expected = _with_true_labels(batch, z_w.argmax(-1))
    metrics = model.train_step(batch)
    np.testing.assert_allclose(float(metrics["uda/teacher_accuracy_on_u"]),
                               expected, rtol=1e-6)
    assert "mpl/pseudo_label_accuracy" not in metrics


@pytest.mark.parametrize("mode", ["uda", "taylor"])
def test_out_of_class_shares_and_confidences(mode):
    """Unlabeled images known to be of none of the classes: their share of
    the batch, of the images over the threshold, of what the student learns
    from, and the teacher's confidence on them and on the others, computed
    here from the teacher's weak-view logits."""
    model = fx.trainer(mode, dropout=0.0)
    batch = fx.batch(np.random.default_rng(6), b=4, mu=4)
    u = len(batch["u_weak"])
    z_w = _logits(model.teacher, teacher_images(batch))[-2 * u:-u]
    q = np.exp(z_w / model.cfg.uda_temp)
    confidence = (q / q.sum(-1, keepdims=True)).max(-1)
    # A threshold that keeps about half of them.
    model.cfg = dataclasses.replace(model.cfg,
                                    uda_threshold=float(np.median(confidence)))
    kept = confidence >= model.cfg.uda_threshold
    # Out of the classes: 4 images over the threshold, 1 under it.
    out = np.zeros(u, bool)
    out[np.flatnonzero(kept)[:4]] = True
    out[np.flatnonzero(~kept)[:1]] = True
    labels = np.where(out, -2, np.arange(u) % 10).astype(np.int32)
    labels[np.flatnonzero(~out)[0]] = -1  # unknown: neither in nor out
    batch.update(u_labels=labels, u_out_of_classes=out.astype(np.float32))
    assert 0 < kept.sum() < u and kept[out].any()
    metrics = model.train_step(batch)
    expected = {
        "ood/share": out.mean(),
        "ood/share_confident": (out & kept).sum() / kept.sum(),
        "ood/teacher_confidence_in": confidence[labels >= 0].mean(),
        "ood/teacher_confidence_out": confidence[out].mean()}
    if mode == "taylor":
        expected["ood/share_learned"] = out.mean()
    got = {k: float(v) for k, v in metrics.items() if k.startswith("ood/")}
    assert got == pytest.approx(expected, rel=1e-5)


def test_no_out_of_class_metrics_without_such_images():
    model = fx.trainer("taylor", dropout=0.0)
    batch = fx.batch(np.random.default_rng(6))
    batch["u_labels"] = np.zeros(len(batch["u_weak"]), np.int32)
    assert not [k for k in model.train_step(batch) if k.startswith("ood/")]


def test_window_stats():
    window = Window(feedback=True)
    for h in (1.0, 2.0, 6.0):
        window.update_state(tf.constant(h), tf.constant(0, tf.int64))
    out = {k: float(v) for k, v in window.result().items()}
    assert out == pytest.approx({
        "mpl/feedback_window_mean": 3.0,
        "mpl/feedback_window_std": math.sqrt(14 / 3),
        "nonfinite/window_skipped_steps": 0.0,
        "nonfinite/window_cause": 0.0})
    window.reset_state()  # the next window starts empty
    assert float(window.result()["nonfinite/window_skipped_steps"]) == 0.0
    assert np.isnan(float(window.result()["mpl/feedback_window_mean"]))


def test_eval_history_has_the_teacher_and_the_training_diagnostics(
        tiny_params, capsys):
    result = main.run(tiny_params())
    assert "final teacher: test top-1" in capsys.readouterr().out
    with open(os.path.join(tiny_params().output_dir, "eval_history.jsonl"),
              encoding="utf-8") as f:
        records = [json.loads(line) for line in f]
    assert [r["step"] for r in records] == [3, 6]
    last = records[-1]
    assert last["teacher"]["test"]["count"] == 600
    assert last["teacher"]["test"] == result["teacher"]["test"]
    assert last["teacher"]["test"]["top1"] != last["test"]["top1"] or \
        last["teacher"]["test"]["loss"] != last["test"]["loss"]
    train = last["train"]
    assert train["step"] == 6
    for name in ("mpl/pseudo_label_accuracy", "mpl/teacher_student_agreement",
                 "uda/u_ratio", "uda/teacher_accuracy_on_u"):
        assert 0.0 <= train[name] <= 1.0, name
    assert train["mpl/labeled_loss_before"] > 0
    assert train["mpl/feedback"] == pytest.approx(
        train["mpl/labeled_loss_before"] - train["mpl/labeled_loss_after"])
    assert train["mpl/feedback_window_std"] >= 0.0
