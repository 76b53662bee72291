"""Interruptions, corrupted checkpoints, finetune, eval, export, NaN guard."""

import glob
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from interrupted_run import checkpoint_tensors, straight_and_killed
from mpl_tf import main
from mpl_tf.training.loop import NonFiniteError, loop_length

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

TINY_CLI = ["--dataset_name=digits_30_mpl", "--model_type=cnn-tiny",
            "--image_size=12", "--train_batch_size=8", "--uda_data=2",
            "--eval_batch_size=600", "--num_train_steps=8", "--save_every=2",
            "--log_every=1", "--mpl_student_lr_wait_steps=0",
            "--mpl_student_lr_warmup_steps=2", "--mpl_teacher_lr_warmup_steps=2",
            "--lr_decay_type=cosine", "--ema_decay=0.9", "--augment_magnitude=10",
            "--dense_dropout_rate=0.2", "--mpl_label=sample", "--deterministic"]


def _cli(out_dir, *extra):
    return [sys.executable, "-m", "mpl_tf.main", f"--output_dir={out_dir}",
            *TINY_CLI, *extra]


# Checkpointed state compared bit for bit between runs.
STATE = ("student", "teacher", "ema", "mpl_baseline", "optimizer",
         "nonfinite")


def _same_state(a_dir, b_dir):
    a = checkpoint_tensors(a_dir, STATE)
    b = checkpoint_tensors(b_dir, STATE)
    assert any(n.startswith("student") for n in a)
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def _eval_history(directory):
    with open(directory / "eval_history.jsonl", encoding="utf-8") as f:
        records = [json.loads(line) for line in f]
    for r in records:  # the only values that may differ between runs
        r.pop("checkpoint")
        r["train"].pop("time/steps_per_sec")
    return records


# 12 steps; log, checkpoint and evaluate at 6 and 12.
LOOP_CLI = ("--num_train_steps=12", "--save_every=6", "--log_every=6")


def test_loops_and_a_sigkill_change_no_weight_and_no_logged_value(tmp_path):
    """With --deterministic, against one step per call: a run in loops of
    5 (5, 1, 5, 1 steps between the boundaries at 6 and 12), killed after
    its first checkpoint and rerun, ends with the same checkpoint tensors
    and logs the same evaluation and scalars at step 12 (the feedback's
    window mean and spread over steps 7-12 included)."""
    one, killed = tmp_path / "loop1", tmp_path / "killed5"

    def cli(out):
        per_loop = {one: 1, killed: 5}[out]
        return _cli(out, *LOOP_CLI, f"--iterations_per_loop={per_loop}")
    straight_and_killed(cli, one, killed, REPO, final_step=12)
    _same_state(one, killed)
    history_one, history_killed = _eval_history(one), _eval_history(killed)
    assert [r["step"] for r in history_one] == [6, 12]
    assert "mpl/feedback_window_std" in history_one[-1]["train"]
    assert history_one[-1] == history_killed[-1]


@pytest.mark.parametrize("step,total,per_loop,periods,expected", [
    (0, 100, 50, (50, 1000), 50),
    (0, 12, 5, (6, 6), 5), (5, 12, 5, (6, 6), 1), (6, 12, 5, (6, 6), 5),
    (7, 100, 50, (10, 30), 3),   # the next log step
    (28, 100, 50, (50, 30), 2),  # the next checkpoint
    (98, 100, 50, (50, 1000), 2),  # the last step
    (3, 100, 1, (10, 10), 1),
])
def test_a_loop_ends_at_the_next_boundary(step, total, per_loop, periods,
                                          expected):
    assert loop_length(step, total, per_loop, *periods) == expected


def test_corrupted_newest_checkpoint_falls_back(tiny_params, caplog):
    main.run(tiny_params(dataset_name="digits_30_uda"))
    ckpt_dir = os.path.join(tiny_params().output_dir, "checkpoints")
    for path in glob.glob(os.path.join(ckpt_dir, "ckpt-6.data-*")):
        with open(path, "r+b") as f:
            f.truncate(16)
    result = main.run(tiny_params(dataset_name="digits_30_uda",
                                  task_mode="eval"))
    assert result["checkpoint"].endswith("ckpt-3")
    assert result["step"] == 3
    assert "cannot read checkpoint" in caplog.text


def test_finetune_and_eval_select_by_validation(tiny_params):
    params = dict(num_val=20, finetune_steps=3, finetune_lr=0.01)
    result = main.run(tiny_params(**params))
    ft = result["finetune"]
    assert {"test", "val"} <= set(ft["before"]) and {"test", "val"} <= set(ft["after"])
    assert int(result["trainer"].global_step.numpy()) == 3
    out = tiny_params().output_dir
    assert tf.train.latest_checkpoint(os.path.join(out, "finetune", "checkpoints"))
    summary = main.run(tiny_params(task_mode="eval", eval_all_checkpoints=True,
                                   **params))
    assert [r["step"] for r in summary["checkpoints"]] == [3, 6]
    best = max(summary["checkpoints"], key=lambda r: r["val"]["top1"])
    assert summary["best_by_validation"]["checkpoint"] == best["checkpoint"]
    assert os.path.exists(os.path.join(out, "eval.json"))


def test_saved_model_cli_runs_the_export(tiny_params, tmp_path):
    result = main.run(tiny_params(dataset_name="digits_30"))
    images = np.random.default_rng(0).integers(0, 256, (2, 12, 12, 3),
                                               dtype=np.uint8)
    npy = tmp_path / "images.npy"
    np.save(npy, images)
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    proc = subprocess.run(
        [cli, "run", "--dir", result["export"], "--tag_set", "serve",
         "--signature_def", "serving_default", "--inputs", f"images={npy}"],
        capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "probabilities" in proc.stdout and "classes" in proc.stdout


class _NaNAfter:
    """Wraps a TrainInput: labeled images become NaN from step `start` on."""

    def __init__(self, inner, start):
        self.inner, self.start = inner, start

    def dataset(self, input_context=None, start_step=0):
        ds = self.inner.dataset(input_context, start_step)
        first = self.start - start_step - 1  # element index of step `start`

        def poison(i, batch):
            batch = dict(batch)
            batch["l_images"] = tf.where(i >= first, float("nan"),
                                         batch["l_images"])
            return batch
        return ds.enumerate().map(poison)


def test_nan_steps_are_skipped_counted_and_stop_the_run(tiny_params,
                                                        monkeypatch):
    """Steps 4 and 5 are skipped; more than 1 in a row stops the run at
    step 5 with the last good state saved (finite, its count of skipped
    steps in a row back at 0), from which a clean rerun resumes."""
    from mpl_tf import task

    original = task.train_input
    monkeypatch.setattr(task, "train_input",
                        lambda *args: _NaNAfter(original(*args), start=4))
    # Loops of 3 steps (--log_every=3); the stop comes mid-loop, at step 5.
    params = dict(dataset_name="digits_30_uda", num_train_steps=9,
                  save_every=3, max_nonfinite_steps=1)
    with pytest.raises(NonFiniteError, match="^step 5: 2 steps in a row .*"
                       "non-finite teacher loss.*max_nonfinite_steps=1.*"
                       "Lower --lr.*ckpt-5"):
        main.run(tiny_params(**params))
    ckpt_dir = os.path.join(tiny_params().output_dir, "checkpoints")
    newest = tf.train.latest_checkpoint(ckpt_dir)
    assert newest.endswith("ckpt-5"), newest
    reader = tf.train.load_checkpoint(newest)
    for name in reader.get_variable_to_shape_map():
        value = reader.get_tensor(name)
        if np.issubdtype(np.asarray(value).dtype, np.floating):
            assert np.all(np.isfinite(value)), name
        if name.startswith("nonfinite_in_a_row"):
            assert value == 0
    monkeypatch.setattr(task, "train_input", original)
    result = main.run(tiny_params(**params))
    assert result["start_step"] == 5
    assert int(result["trainer"].nonfinite_steps.numpy()) == 2
