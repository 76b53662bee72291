"""Bad input stops early with a message naming the flag or path, exit
status 2 on the command line, and leaves what is on disk untouched."""

import hashlib
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from mpl_tf import main
from mpl_tf.errors import ConfigError
from mpl_tf.config import StepConfig
from mpl_tf.training.optimizer import make_optimizer
from mpl_tf.training.uda import UDAModel

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _snapshot(directory):
    out = {}
    for root, _, files in os.walk(directory):
        for name in files:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, directory)] = hashlib.sha256(
                    f.read()).hexdigest()
    return out


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A finished tiny run (checkpoints + export) to be left untouched."""
    from mpl_tf import config

    out = tmp_path_factory.mktemp("trained") / "run"
    values = dict(dataset_name="digits_30_uda", model_type="cnn-tiny",
                  output_dir=str(out), train_batch_size=8, uda_data=2,
                  num_train_steps=2, save_every=2, log_every=2, image_size=12,
                  eval_batch_size=600)
    main.run(config.defaults(**values))
    return values, str(out)


def _expect_error(values, needle, **overrides):
    from mpl_tf import config

    with pytest.raises(ConfigError) as err:
        main.run(config.defaults(**{**values, **overrides}))
    assert needle in str(err.value), str(err.value)
    assert "\n" not in str(err.value)


def test_other_model_in_existing_output_dir(trained):
    values, out = trained
    before = _snapshot(out)
    _expect_error(values, "holds a run with other settings: --model_type "
                  "(was 'cnn-tiny', now 'cnn-16')", model_type="cnn-16")
    _expect_error(values, "--seed (was 0, now 5)", seed=5)
    _expect_error(values, "--image_size (was 12, now 16)", image_size=16,
                  task_mode="export")
    assert _snapshot(out) == before


def test_checkpoint_of_another_model_type(trained, tmp_path):
    values, out = trained
    before = _snapshot(out)
    _expect_error(values, "does not match this model", model_type="cnn-16",
                  output_dir=str(tmp_path / "new"), task_mode="export",
                  load_checkpoint=os.path.join(out, "checkpoints"))
    assert _snapshot(out) == before


def test_eval_and_export_without_checkpoint(trained, tmp_path):
    values, _ = trained
    empty = tmp_path / "empty"
    _expect_error(values, "does not exist; train first", task_mode="eval",
                  output_dir=str(empty))
    empty.mkdir()
    _expect_error(values, "no readable checkpoint", task_mode="export",
                  output_dir=str(empty))
    assert os.listdir(empty) == []


def test_unwritable_output_dir(trained, tmp_path):
    values, _ = trained
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    _expect_error(values, f"--output_dir={blocker}/run cannot be written",
                  output_dir=str(blocker / "run"))
    assert blocker.read_text() == "not a directory"


def test_missing_flagfile_on_the_command_line(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "mpl_tf.main", "--flagfile=flags/nope.cfg",
         f"--output_dir={tmp_path / 'o'}"], capture_output=True, text=True,
        cwd=REPO, timeout=120, check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == (
        "mpl_tf: error: --flagfile=flags/nope.cfg: no such file (run from "
        "the repository root, or give the full path)")
    assert not (tmp_path / "o").exists()


def test_cli_refuses_other_settings_with_status_2(trained):
    _, out = trained
    before = _snapshot(out)
    proc = subprocess.run(
        [sys.executable, "-m", "mpl_tf.main", "--dataset_name=digits_30_uda",
         f"--output_dir={out}", "--model_type=cnn-16", "--image_size=12"],
        capture_output=True, text=True, cwd=REPO, timeout=300, check=False)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "--model_type (was 'cnn-tiny', now 'cnn-16')" in proc.stderr
    assert _snapshot(out) == before


def test_one_nan_step_updates_nothing_and_is_counted():
    net = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    model = UDAModel(StepConfig(weight_decay=1e-3),
                     net, make_optimizer(0.1, "momentum", "opt"))
    model.build_optimizers()
    good = {"l_images": np.ones((2, 4), np.float32),
            "l_labels": np.array([0, 1], np.int32),
            "u_weak": np.ones((2, 4), np.float32),
            "u_strong": np.ones((2, 4), np.float32)}
    model.train_step(good)  # gives the momentum a non-zero state
    weights = [w.numpy().copy() for w in net.weights]
    slots = [v.numpy().copy() for v in model.teacher_optimizer.variables]
    bad = dict(good, u_strong=np.full((2, 4), np.nan, np.float32))
    metrics = model.train_step(bad)
    assert int(metrics["nonfinite/skipped_steps"]) == 1
    for before, w in zip(weights, net.weights):
        np.testing.assert_array_equal(before, w.numpy())
    changed = [not np.array_equal(a, v.numpy()) for a, v in
               zip(slots, model.teacher_optimizer.variables)]
    assert sum(changed) == 1, "only the iteration count may move"
    model.train_step(good)
    assert int(model.nonfinite_in_a_row.numpy()) == 0
    assert int(model.nonfinite_steps.numpy()) == 1
