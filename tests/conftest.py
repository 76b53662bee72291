"""Shared test set-up: quiet TensorFlow, parse absl flags once."""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# The fixtures and helpers the tests import (step_fixtures, tfds_fakes, ...).
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "support"))
from mpl_tf import console  # noqa: E402

console.tensorflow_defaults()  # as the command line does, before TensorFlow

from absl import flags  # noqa: E402
import pytest  # noqa: E402

import mpl_tf.flags  # noqa: E402,F401  (defines the flags)

if not flags.FLAGS.is_parsed():
    flags.FLAGS(["pytest"])


@pytest.fixture
def tiny_params(tmp_path):
    """Parameters of a tiny, fast digits MPL run in a fresh directory."""
    from mpl_tf import config

    def make(**overrides):
        values = dict(
            dataset_name="digits_30_mpl", model_type="cnn-tiny",
            output_dir=str(tmp_path / "run"), train_batch_size=8, uda_data=2,
            eval_batch_size=100, num_train_steps=6, save_every=3, log_every=3,
            mpl_student_lr_wait_steps=0, mpl_student_lr_warmup_steps=2,
            mpl_teacher_lr_warmup_steps=2, lr_decay_type="cosine",
            ema_decay=0.9, augment_magnitude=5, image_size=12)
        values.update(overrides)
        return config.defaults(**values)
    return make
