"""SIGTERM mid-run: a checkpoint at the current step (the end of the
running loop of --iterations_per_loop steps), exit status 143, and the same
command resumes from that step."""

import os
import re
import signal
import subprocess
import sys
import time

import tensorflow as tf

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_sigterm_saves_and_the_rerun_resumes(tmp_path):
    """In loops of 4 (one step per call is the special case of loops of 1,
    the same code)."""
    per_loop = 4
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "mpl_tf.main", "--dataset_name=digits_30_uda",
           "--model_type=cnn-tiny", "--image_size=12", "--train_batch_size=8",
           "--uda_data=2", "--eval_batch_size=600", "--num_train_steps=100000",
           f"--iterations_per_loop={per_loop}", "--save_every=100000",
           f"--log_every={per_loop}", f"--output_dir={out}"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    events = out / "train"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None and not (
            events.exists() and os.listdir(events)):
        time.sleep(0.1)
    time.sleep(2)  # let it take a few steps
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 143, err[-3000:]
    assert "mpl_tf: preempted: SIGTERM: saved" in err
    saved = tf.train.latest_checkpoint(str(out / "checkpoints"))
    step = int(re.search(r"ckpt-(\d+)$", saved).group(1))
    assert 0 < step < 100000
    assert step % per_loop == 0, "saved at the end of a loop"
    rerun = subprocess.run(
        [*cmd[:-3], f"--num_train_steps={step + 2}", "--save_every=1000",
         cmd[-2], cmd[-1]], cwd=REPO, capture_output=True, text=True,
        timeout=300, check=False)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert tf.train.latest_checkpoint(str(out / "checkpoints")).endswith(
        f"ckpt-{step + 2}")
    assert f"resuming at step {step} from {saved}" in rerun.stdout
