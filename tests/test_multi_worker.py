"""Two worker processes on 127.0.0.1 (MultiWorkerMirroredStrategy, launched
by scripts/launch_local_workers.py) train exactly like one process with the
same global batch."""

import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "scripts"))

import launch_local_workers  # noqa: E402
from mpl_tf import config  # noqa: E402
from mpl_tf.data import registry, teacher_labels  # noqa: E402

ARGS = ["--dataset_name=digits_30_mpl", "--model_type=cnn-tiny",
        "--image_size=12", "--train_batch_size=8", "--uda_data=2",
        "--eval_batch_size=200", "--num_train_steps=4", "--save_every=2",
        "--log_every=2", "--mpl_student_lr_wait_steps=0",  # loops of 2 steps
        "--dense_dropout_rate=0", "--batch_norm_batch_size=1000",
        "--ema_decay=0.9", "--grad_bound=0.5"]


def _final_weights(directory, prefixes):
    path = tf.train.latest_checkpoint(os.path.join(directory, "checkpoints"))
    assert path and path.endswith("ckpt-4"), path
    reader = tf.train.load_checkpoint(path)
    return {n: reader.get_tensor(n) for n in reader.get_variable_to_shape_map()
            if n.startswith(prefixes)}


def _two_workers_match_one_process(tmp_path, args, prefixes):
    cwd = os.getcwd()
    os.chdir(REPO)
    try:
        codes = launch_local_workers.launch(
            2, [*args, f"--output_dir={tmp_path / 'mw'}"],
            str(tmp_path / "logs"), timeout=600)
    finally:
        os.chdir(cwd)
    logs = "".join(open(tmp_path / "logs" / f"worker_{i}.log",
                        encoding="utf-8").read()[-2000:] for i in range(2))
    assert codes == [0, 0], logs
    subprocess.run([sys.executable, "-m", "mpl_tf.main", *args,
                    "--strategy=default", f"--output_dir={tmp_path / 'one'}"],
                   check=True, capture_output=True, cwd=REPO, timeout=600)
    two = _final_weights(tmp_path / "mw", prefixes)
    one = _final_weights(tmp_path / "one", prefixes)
    assert two.keys() == one.keys() and len(one) > 10
    for name in one:
        np.testing.assert_allclose(two[name], one[name], atol=1e-5,
                                   err_msg=name)
    # Only the chief's files remain: no worker scratch directories.
    assert not [p for p in os.listdir(tmp_path / "mw") if p.startswith(".scratch")]
    assert os.path.isdir(tmp_path / "mw" / "export" / "saved_model")
    return one


def test_two_local_workers_match_one_process(tmp_path):
    _two_workers_match_one_process(
        tmp_path, ARGS, ("student", "teacher", "ema", "mpl_baseline"))


@pytest.mark.slow  # ~2 min; the mirrored checks of Reduced MPL run in CI
def test_reduced_mpl_on_two_local_workers_matches_one_process(tmp_path):
    # Stored distributions for this run's images (any values will do: the
    # check is that two workers train like one process on them).
    p = config.defaults(dataset_name="digits_30_mpl", image_size=12,
                            output_dir=str(tmp_path))
    source = registry.load_source(p)
    rng = np.random.default_rng(0)
    teacher_labels.write(
        str(tmp_path / "labels"),
        {s: rng.dirichlet(np.ones(10), len(getattr(source, s)))
         for s in teacher_labels.SPLITS},
        teacher_labels.identity(p, source))
    weights = _two_workers_match_one_process(
        tmp_path, [*ARGS, f"--teacher_labels={tmp_path / 'labels'}"],
        ("student", "ema", "mpl_baseline", "optimizer"))
    # The reduced teacher's weights are among those compared (TensorFlow
    # files them under the optimizer).
    assert any(v.shape == (10, 128) for v in weights.values())
