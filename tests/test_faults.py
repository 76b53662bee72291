"""The fault matrix (README, "Training lifecycle"): the faults a long run
meets, each driven through the command line (or `fit` where it applies),
with what the user reads, what is on disk after, and that a rerun resumes
or finishes. Kills come from tests/support/scripts/fault_cli.py."""

import os
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAULT_CLI = os.path.join(REPO, "tests", "support", "scripts", "fault_cli.py")

TINY = ["--dataset_name=digits_30_mpl", "--model_type=cnn-tiny",
        "--image_size=12", "--train_batch_size=8", "--uda_data=2",
        "--eval_batch_size=600", "--save_every=2", "--log_every=1",
        "--mpl_student_lr_wait_steps=0", "--mpl_student_lr_warmup_steps=1",
        "--mpl_teacher_lr_warmup_steps=1", "--ema_decay=0.9"]


def _run(out, *extra, fault=None, steps=4):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("FAULT", None)
    if fault:
        env["FAULT"] = fault
        cmd = [sys.executable, FAULT_CLI]
    else:
        cmd = [sys.executable, "-m", "mpl_tf.main"]
    cmd += [f"--output_dir={out}", *TINY, f"--num_train_steps={steps}",
            *extra]
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=600, check=False)


def _one_line(proc, start):
    """What the user reads on a fault: one line, no traceback."""
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    lines = [x for x in proc.stderr.splitlines() if x.startswith("mpl_tf:")]
    assert len(lines) == 1 and lines[0].startswith(start), proc.stderr[-3000:]
    return lines[0]


@pytest.fixture(scope="module", name="trained")
def _trained(tmp_path_factory):
    """A finished 2-step run with its export; tests copy it."""
    out = tmp_path_factory.mktemp("trained") / "run"
    proc = _run(out, steps=2)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def _copy(trained, tmp_path):
    shutil.copytree(trained, tmp_path / "run")
    return tmp_path / "run"


def _finite_checkpoint(path):
    reader = tf.train.load_checkpoint(path)
    for name in reader.get_variable_to_shape_map():
        value = np.asarray(reader.get_tensor(name))
        if np.issubdtype(value.dtype, np.floating):
            assert np.all(np.isfinite(value)), name


def _newest(out):
    return tf.train.latest_checkpoint(str(out / "checkpoints"))


def test_exploding_learning_rates_stop_with_a_finite_resumable_checkpoint(
        tmp_path):
    out = tmp_path / "explode"
    proc = _run(out, "--mpl_teacher_lr=1e30", "--mpl_student_lr=1e30",
                "--max_nonfinite_steps=2", steps=12)
    assert proc.returncode == 3, proc.stderr[-3000:]
    line = _one_line(proc, "mpl_tf: stopped: step 3: 3 steps in a row were "
                     "skipped (non-finite ")
    assert "--max_nonfinite_steps=2" in line
    assert "Lower --mpl_teacher_lr and --mpl_student_lr" in line
    # Each window of one step says so in plain words.
    assert "1 of the last 1 steps were skipped: non-finite" in proc.stdout
    newest = _newest(out)
    assert newest.endswith("ckpt-3") and newest in line
    _finite_checkpoint(newest)
    rerun = _run(out, "--max_nonfinite_steps=2", steps=6)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "resuming at step 3" in rerun.stdout
    assert _newest(out).endswith("ckpt-6")


@pytest.mark.parametrize("fault", ["checkpoint:4", "checkpoint_torn:4"])
def test_sigkill_while_writing_a_checkpoint(tmp_path, fault):
    out = tmp_path / "run"
    proc = _run(out, fault=fault, steps=6)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    assert _newest(out).endswith("ckpt-2")  # 4 was never listed
    _finite_checkpoint(_newest(out))
    rerun = _run(out, steps=6)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "resuming at step 2" in rerun.stdout
    assert _newest(out).endswith("ckpt-6")


def _predict(export_dir, images):
    served = tf.saved_model.load(os.path.join(export_dir, "saved_model"))
    return served.signatures["serving_default"](
        images=tf.constant(images))["probabilities"].numpy()


@pytest.mark.parametrize("fault", ["export_write", "export_swap"])
def test_sigkill_while_exporting_keeps_the_previous_export(tmp_path, fault,
                                                          trained):
    out = _copy(trained, tmp_path)
    images = np.random.default_rng(0).integers(0, 256, (3, 12, 12, 3),
                                               dtype=np.uint8)
    first = _predict(str(out / "export"), images)
    proc = _run(out, fault=fault, steps=4)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    # Whole and the first run's: in place, or set aside by the swap.
    kept = out / ("export.old" if fault == "export_swap" else "export")
    np.testing.assert_array_equal(_predict(str(kept), images), first)
    rerun = _run(out, steps=4)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "already trained 4 of 4 steps" in rerun.stdout
    assert not (out / "export.old").exists()
    assert not np.array_equal(_predict(str(out / "export"), images), first)


def _mount_tmpfs(path, size):
    path.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}",
                           "tmpfs", str(path)], capture_output=True,
                          text=True, check=False)
    return proc.returncode == 0, proc.stderr.strip()


def test_a_full_disk_while_writing_a_checkpoint(tmp_path):
    disk = tmp_path / "disk"
    mounted, why = _mount_tmpfs(disk, "16m")
    if not mounted:
        pytest.skip(f"cannot mount a small tmpfs here: {why}")
    try:
        out = disk / "run"
        proc = _run(out, fault="disk_full:4", steps=6)
        assert proc.returncode == 4, proc.stderr[-3000:]
        line = _one_line(proc, "mpl_tf: error: step 4: cannot write a "
                         "checkpoint to ")
        assert "No space left on device" in line
        assert f"the previous checkpoint {out}/checkpoints/ckpt-2 is intact" \
            in line
        assert _newest(out).endswith("ckpt-2")
        _finite_checkpoint(_newest(out))
        os.remove(disk / "balloon")
        rerun = _run(out, steps=6)
        assert rerun.returncode == 0, rerun.stderr[-3000:]
        assert "resuming at step 2" in rerun.stdout
    finally:
        subprocess.run(["umount", str(disk)], check=False)


def test_load_checkpoint_that_cannot_be_read_is_refused(tmp_path, trained):
    out = _copy(trained, tmp_path)
    for data in (out / "checkpoints").glob("ckpt-2.data-*"):
        with open(data, "r+b") as f:
            f.truncate(16)
    proc = _run(tmp_path / "other",
                f"--load_checkpoint={out}/checkpoints/ckpt-2", steps=2)
    assert proc.returncode == 2
    _one_line(proc, f"mpl_tf: error: --load_checkpoint={out}/checkpoints/"
              "ckpt-2: ")


def _image_folders(root, empty_class=False, broken=False):
    def write(path, seed, fmt):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        pixels = np.random.default_rng(seed).integers(0, 256, (14, 14, 3),
                                                      dtype=np.uint8)
        encode = tf.io.encode_png if fmt == "png" else tf.io.encode_jpeg
        tf.io.write_file(path, encode(pixels))
    for c, name in enumerate(("cat", "dog")):
        for i in range(6):
            write(f"{root}/train/{name}/{i}.jpg", 10 * c + i, "jpg")
        write(f"{root}/eval/{name}/0.png", 100 + c, "png")
    if empty_class:
        os.makedirs(f"{root}/train/zebra")
    if broken:
        _cut_jpeg(f"{root}/train/dog/5.jpg")
    return [f"--train_dir={root}/train", f"--eval_dir={root}/eval",
            "--dataset_name=image_folder_4_mpl"]


def _cut_jpeg(path):
    with open(path, "rb") as f:
        data = f.read()
    with open(path, "wb") as f:
        f.write(data[:len(data) // 2])


def test_an_empty_class_folder_is_refused_by_name(tmp_path):
    proc = _run(tmp_path / "run", *_image_folders(tmp_path / "data",
                                                  empty_class=True), steps=2)
    assert proc.returncode == 2
    line = _one_line(proc, "mpl_tf: error: --train_dir=")
    assert "class folder(s) zebra hold no image" in line
    assert not (tmp_path / "run").exists()


def test_an_unreadable_image_is_one_plain_line(tmp_path):
    data = _image_folders(tmp_path / "data", broken=True)
    proc = _run(tmp_path / "run", *data, steps=2)
    assert proc.returncode == 2
    line = _one_line(proc, "mpl_tf: error: 1 image files cannot be decoded: ")
    assert "dog/5.jpg" in line and "--skip_bad_images" in line
    assert "JPEG" not in proc.stderr  # libjpeg's own messages are dropped
    proc = _run(tmp_path / "run", *data, "--skip_bad_images", steps=2)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = _one_line(proc, "mpl_tf: warning: --skip_bad_images: skipped 1 ")
    assert "JPEG" not in proc.stderr


def test_an_image_that_breaks_between_runs_is_refused_on_resume(tmp_path):
    data = _image_folders(tmp_path / "data")
    out = tmp_path / "run"
    assert _run(out, *data, "--skip_bad_images", steps=2).returncode == 0
    _cut_jpeg(str(tmp_path / "data" / "train" / "cat" / "3.jpg"))
    proc = _run(out, *data, "--skip_bad_images", steps=4)
    assert proc.returncode == 2
    lines = [x for x in proc.stderr.splitlines() if x.startswith("mpl_tf:")]
    assert lines[0].startswith("mpl_tf: warning: --skip_bad_images: skip")
    assert lines[1].startswith(f"mpl_tf: error: --output_dir={out} was "
                               "trained on other images")
    assert "1 training files missing or unreadable, 0 new; e.g. cat/3.jpg" \
        in lines[1]
    assert _newest(out).endswith("ckpt-2")


# -- in the step, the loop and fit ------------------------------------------

def test_an_update_to_huge_but_finite_weights_is_undone():
    """Teacher learning rate 1e38: every value computed before the update
    is finite, the updated weights are not (their norm overflows)."""
    import step_fixtures as fx
    from mpl_tf.training import nonfinite

    model = fx.trainer("taylor", teacher_lr=1e38)
    rng = np.random.default_rng(0)
    before = fx.all_state(model)
    metrics = model.train_step(fx.batch(rng))
    assert int(metrics["nonfinite/cause"]) == nonfinite.bit("teacher weights")
    after = fx.all_state(model)
    changed = [k for k in before if not np.array_equal(before[k], after[k])]
    assert changed and all(k.endswith("/iteration") for k in changed), changed


def test_window_statistics_leave_out_skipped_steps_and_bad_values():
    from mpl_tf.training import nonfinite

    good = [0.25, -0.5, 1.0]
    window = nonfinite.Window(feedback=True)
    for value, cause in ((good[0], 0), (float("nan"), 16), (good[1], 0),
                         (-float("inf"), 64), (good[2], 0),
                         (float("inf"), 0)):
        window.update_state(tf.constant(value), tf.constant(cause, tf.int64))
    summary = {k: float(v) for k, v in window.result().items()}
    assert nonfinite.window_report(
        int(summary["nonfinite/window_skipped_steps"]), 6,
        int(summary["nonfinite/window_cause"])) == (
            "2 of the last 6 steps were skipped: non-finite student gradient "
            "and feedback")
    mean = sum(good) / 3
    assert summary["mpl/feedback_window_mean"] == pytest.approx(mean)
    assert summary["mpl/feedback_window_std"] == pytest.approx(
        np.sqrt(sum((g - mean) ** 2 for g in good) / 3), rel=1e-5)
    window.reset_state()
    window.update_state(tf.constant(np.nan), tf.constant(1, tf.int64))
    summary = {k: float(v) for k, v in window.result().items()}
    assert summary["nonfinite/window_skipped_steps"] == 1
    assert np.isnan(summary["mpl/feedback_window_mean"])


class _PoisonOneStep:
    """Wraps a TrainInput: step `step`'s labeled images become `value`."""

    def __init__(self, inner, step, value):
        self.inner, self.step, self.value = inner, step, value

    def dataset(self, input_context=None, start_step=0):
        index = self.step - start_step - 1

        def poison(i, batch):
            batch = dict(batch)
            batch["l_images"] = tf.where(i == index, self.value,
                                         batch["l_images"])
            return batch
        return self.inner.dataset(input_context, start_step).enumerate().map(
            poison)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_one_bad_step_is_reported_and_the_run_goes_on(tiny_params, value,
                                                      monkeypatch, capsys):
    import json

    from mpl_tf import main, task

    original = task.train_input
    monkeypatch.setattr(task, "train_input", lambda *a: _PoisonOneStep(
        original(*a), step=2, value=value))
    main.run(tiny_params(num_train_steps=6, save_every=3, log_every=3))
    out = capsys.readouterr().out
    assert "warning: 1 of the last 3 steps were skipped: non-finite " \
        "teacher loss" in out
    with open(os.path.join(tiny_params().output_dir, "eval_history.jsonl"),
              encoding="utf-8") as f:
        records = [json.loads(line) for line in f]
    assert [r["step"] for r in records] == [3, 6]
    train = records[0]["train"]
    assert train["nonfinite/window_skipped_steps"] == 1
    assert np.isfinite(train["mpl/feedback_window_mean"])
    assert records[1]["train"]["nonfinite/skipped_steps"] == 1


def test_fit_windows_leave_out_a_skipped_step(capsys):
    import statistics

    import keras

    import mpl_tf
    from mpl_tf.data import pipeline
    from mpl_tf.data.sources import digits

    keras.utils.set_random_seed(0)
    dense = lambda: keras.Sequential([  # noqa: E731
        keras.Input((8, 8, 3)), keras.layers.Rescaling(1 / 255),
        keras.layers.Flatten(), keras.layers.Dense(16, activation="relu"),
        keras.layers.Dense(10)])
    mpl = mpl_tf.MetaPseudoLabels(teacher=dense(), student=dense(),
                                  uda_steps=4)
    mpl.compile()
    source = digits.load(50, seed=0, image_size=8)
    train = pipeline.source_train_dataset(source, batch_size=8, uda_data=2)
    poisoned = train.enumerate().map(lambda i, b: {
        **b, "u_strong": b["u_strong"] * tf.where(i == 1, np.inf, 1.0)})

    class Logs(keras.callbacks.Callback):
        seen = []

        def on_train_batch_end(self, batch, logs=None):
            self.seen.append({k: float(v) for k, v in logs.items()})
    history = mpl.fit(poisoned, epochs=1, steps_per_epoch=4, verbose=0,
                      callbacks=[Logs(), mpl_tf.callbacks.
                                 StopAfterNonFiniteSteps()])
    skipped = [logs["nonfinite/cause"] > 0 for logs in Logs.seen]
    assert skipped == [False, True, False, False]
    good = [logs["mpl/feedback"] for logs in Logs.seen if
            not logs["nonfinite/cause"]]
    assert history.history["nonfinite/window_skipped_steps"] == [1]
    assert history.history["mpl/feedback_window_mean"][0] == pytest.approx(
        statistics.fmean(good), rel=1e-5, abs=1e-9)
    assert history.history["mpl/feedback_window_std"][0] == pytest.approx(
        statistics.pstdev(good), rel=1e-3, abs=1e-9)
    assert "mpl_tf: warning: 1 of the last 4 steps were skipped: " \
        "non-finite teacher gradient" in capsys.readouterr().err


def test_bad_arrays_are_refused_before_training():
    import keras

    import mpl_tf

    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (20, 8, 8, 3)).astype(np.float32)
    labels = np.arange(20) % 10
    for what, bad in (("labeled_images", images), ("unlabeled_images",
                                                   images.copy())):
        for value in (np.nan, np.inf):
            bad = bad.copy()
            bad[7, 1, 2, 0] = value
            args = ((bad, labels, images) if what == "labeled_images"
                    else (images, labels, bad))
            with pytest.raises(ValueError, match=rf"^{what}\[7\] has NaN or "
                               "infinite pixels"):
                mpl_tf.data.train_dataset(*args)
    negative = labels.copy()
    negative[4] = -1
    with pytest.raises(ValueError, match=r"^labeled_labels\[4\] = -1 is not "):
        mpl_tf.data.train_dataset(images, negative, images)
    # Labels past the networks' outputs: refused when fit starts.
    eleven = labels.copy()
    eleven[5] = 11
    net = lambda: keras.Sequential([  # noqa: E731
        keras.Input((8, 8, 3)), keras.layers.Flatten(), keras.layers.Dense(10)])
    mpl = mpl_tf.MetaPseudoLabels(teacher=net(), student=net())
    mpl.compile()
    with pytest.raises(ValueError, match=r"^labeled_labels\[5\] = 11 is not "
                       "one of the 10 classes"):
        mpl.fit(mpl_tf.data.train_dataset(images, eleven, images),
                steps_per_epoch=1)
    assert int(mpl.global_step.numpy()) == 0
