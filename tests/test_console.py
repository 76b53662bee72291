"""The default console: progress lines, eval lines and results; no line from
TensorFlow's C++ logger (or absl's INFO), no carriage returns in a file."""

import io
import os
import re
import subprocess
import sys
import types

from mpl_tf import console

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# First lines of C++ log records: absl's `I0000 00:00:1795808739.816173  1552
# port.cc:153]` (also the shape of absl's Python log lines) and TensorFlow's
# older `2026-11-27 19:46:03.461266: I tensorflow/...]`.
CPP_LOG = re.compile(r"^(?:[IWEF]\d{4} |\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: "
                     r"[IWEF] |\d{4} \d\d:\d\d:\d\d\.\d+: [IWEF] )", re.M)


def test_default_run_prints_progress_and_results_only(tmp_path):
    env = dict(os.environ)
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # conftest sets it; test the default
    cmd = [sys.executable, "-m", "mpl_tf.main", "--dataset_name=digits_30_mpl",
           "--model_type=cnn-tiny", "--image_size=12", "--train_batch_size=8",
           "--uda_data=2", "--eval_batch_size=600", "--num_train_steps=4",
           "--save_every=2", "--log_every=2", "--mpl_student_lr_wait_steps=0",
           f"--output_dir={tmp_path / 'run'}"]
    with open(tmp_path / "stdout.txt", "w", encoding="utf-8") as out, \
            open(tmp_path / "stderr.txt", "w", encoding="utf-8") as err:
        proc = subprocess.run(cmd, cwd=REPO, env=env, stdout=out, stderr=err,
                              timeout=600, check=False)
    stdout = (tmp_path / "stdout.txt").read_text(encoding="utf-8")
    stderr = (tmp_path / "stderr.txt").read_text(encoding="utf-8")
    assert proc.returncode == 0, stderr[-3000:]
    for text in (stdout, stderr):
        assert not CPP_LOG.findall(text), text[-3000:]
        assert "\r" not in text and "\x1b[" not in text, repr(text[-500:])
        assert "INFO:" not in text and console.ABSL_BANNER not in text
    assert re.search(r"^step 2/4 - [\d.]+ steps/s - ETA .* - teacher_on_l ",
                     stdout, re.M), stdout
    assert re.search(r"^step 4: test top-1 0\.\d{4} \(teacher 0\.\d{4}\)$",
                     stdout, re.M), stdout
    # The last accuracy line is the exported network's, after the export.
    assert re.search(r"exported SavedModel: .*\nfinal \(the exported "
                     r"student, .*\): test top-1 0\.\d{4}, top-5 .*\n$", stdout)
    assert "exported SavedModel: " in stdout


def test_progress_without_a_terminal_prints_lines():
    stream = io.StringIO()  # not a terminal
    progress = console.Progress(10, start=0, stream=stream)
    progress.update(5, [("loss", 1.5)])
    progress.line("step 5: test top-1 0.5000")
    progress.update(10, [("loss", 0.25)])
    lines = stream.getvalue().splitlines()
    assert "\r" not in stream.getvalue()
    assert len(lines) == 3
    assert lines[0].startswith("step 5/10 - ") and lines[0].endswith(
        " - loss 1.5000") and " - ETA " in lines[0]
    assert lines[1] == "step 5: test top-1 0.5000"
    assert lines[2].startswith("step 10/10 - ") and "ETA" not in lines[2]
    console.Progress(10, stream=stream, enabled=False).update(3)
    assert len(stream.getvalue().splitlines()) == 3


def test_import_time_lines_below_the_level_are_dropped():
    info = ("I0000 00:00:1795808739.816173    1552 port.cc:153] oneDNN custom "
            "operations are on.")
    error = ("E0000 00:00:1795808744.029144    1552 cuda_platform.cc:52] "
             "failed call to cuInit")
    old = "2026-11-27 19:46:03.461266: W tensorflow/x.cc:44] old format"
    assert console.below_level(info, 1) and not console.below_level(info, 0)
    assert console.below_level(error, 3) and not console.below_level(error, 2)
    assert console.below_level(old, 2) and not console.below_level(old, 1)
    assert console.below_level(console.ABSL_BANNER + "\n", 1)
    assert not console.below_level("UserWarning: something real", 3)


class _FakeFlags:
    """What configure_logging reads of absl's FLAGS."""

    def __init__(self, verbosity):
        self.verbosity = verbosity
        self._present = int(verbosity is not None)

    def __getitem__(self, name):
        assert name == "verbosity"
        return types.SimpleNamespace(present=self._present)


def test_verbosity_sets_the_cpp_level_unless_the_user_did(monkeypatch):
    from absl import logging

    monkeypatch.setattr(console, "USER_CPP_LEVEL", None)
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")
    verbosity = logging.get_verbosity()
    try:
        console.configure_logging(_FakeFlags(0))  # --verbosity=0: everything
        assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "0"
        console.configure_logging(_FakeFlags(-2))  # errors and up
        assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "2"
        monkeypatch.setattr(console, "USER_CPP_LEVEL", "1")
        console.configure_logging(_FakeFlags(0))  # the user's variable wins
        assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "2"
        console.configure_logging(_FakeFlags(None))  # no --verbosity
        assert logging.get_verbosity() == logging.WARNING
    finally:
        logging.set_verbosity(verbosity)
