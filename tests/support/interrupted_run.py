"""A CLI run killed after its first checkpoint and rerun, beside the same
run uninterrupted (not a test module; used by the resume tests)."""

import signal
import subprocess
import time

import tensorflow as tf


def straight_and_killed(cli, straight, killed, cwd, final_step):
    """`cli(output_dir)` is the command line. Runs it to the end in
    `straight`; in `killed` SIGKILLs it once a checkpoint is listed (before
    `final_step`) and reruns it to the end. Asserts both reruns finished."""
    subprocess.run(cli(straight), check=True, capture_output=True, cwd=cwd,
                   timeout=600)
    proc = subprocess.Popen(cli(killed), cwd=cwd, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    index = killed / "checkpoints" / "checkpoint"
    deadline = time.time() + 300
    while not index.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = tf.train.latest_checkpoint(str(killed / "checkpoints"))
    assert killed_at and not killed_at.endswith(f"ckpt-{final_step}"), \
        killed_at
    rerun = subprocess.run(cli(killed), capture_output=True, text=True,
                           cwd=cwd, timeout=600, check=False)
    assert rerun.returncode == 0, rerun.stderr[-3000:]


def checkpoint_tensors(directory, prefixes):
    """{name: value} of the newest checkpoint's tensors under `prefixes`,
    optimizer slots excluded."""
    reader = tf.train.load_checkpoint(
        tf.train.latest_checkpoint(str(directory / "checkpoints")))
    return {n: reader.get_tensor(n) for n in reader.get_variable_to_shape_map()
            if n.startswith(prefixes) and "OPTIMIZER_SLOT" not in n}
