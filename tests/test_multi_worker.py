"""Two worker processes on 127.0.0.1 (MultiWorkerMirroredStrategy, launched
by scripts/launch_local_workers.py) train exactly like one process with the
same global batch."""

import os
import subprocess
import sys

import numpy as np
import tensorflow as tf

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "scripts"))

import launch_local_workers  # noqa: E402

ARGS = ["--dataset_name=digits_30_mpl", "--model_type=cnn-tiny",
        "--image_size=12", "--train_batch_size=8", "--uda_data=2",
        "--eval_batch_size=200", "--num_train_steps=4", "--save_every=2",
        "--log_every=2", "--mpl_student_lr_wait_steps=0",  # loops of 2 steps
        "--dense_dropout_rate=0", "--batch_norm_batch_size=1000",
        "--ema_decay=0.9", "--grad_bound=0.5"]


def _final_weights(directory):
    path = tf.train.latest_checkpoint(os.path.join(directory, "checkpoints"))
    assert path and path.endswith("ckpt-4"), path
    reader = tf.train.load_checkpoint(path)
    return {n: reader.get_tensor(n) for n in reader.get_variable_to_shape_map()
            if n.startswith(("student", "teacher", "ema", "mpl_baseline"))}


def test_two_local_workers_match_one_process(tmp_path):
    cwd = os.getcwd()
    os.chdir(REPO)
    try:
        codes = launch_local_workers.launch(
            2, [*ARGS, f"--output_dir={tmp_path / 'mw'}"],
            str(tmp_path / "logs"), timeout=600)
    finally:
        os.chdir(cwd)
    logs = "".join(open(tmp_path / "logs" / f"worker_{i}.log",
                        encoding="utf-8").read()[-2000:] for i in range(2))
    assert codes == [0, 0], logs
    subprocess.run([sys.executable, "-m", "mpl_tf.main", *ARGS,
                    "--strategy=default", f"--output_dir={tmp_path / 'one'}"],
                   check=True, capture_output=True, cwd=REPO, timeout=600)
    two, one = _final_weights(tmp_path / "mw"), _final_weights(tmp_path / "one")
    assert two.keys() == one.keys() and len(one) > 10
    for name in one:
        np.testing.assert_allclose(two[name], one[name], atol=1e-5,
                                   err_msg=name)
    # Only the chief's files remain: no worker scratch directories.
    assert not [p for p in os.listdir(tmp_path / "mw") if p.startswith(".scratch")]
    assert os.path.isdir(tmp_path / "mw" / "export" / "saved_model")
