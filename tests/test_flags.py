"""Command lines: the reference's CIFAR-10 recipe parses; bad values fail
early with one clear line naming the flag."""

import os
import re
import subprocess
import sys

from absl import flags
from absl.testing import flagsaver
import pytest

from mpl_tf import config, main
from mpl_tf import flags as mpl_flags
from mpl_tf.errors import ConfigError

FLAGS = flags.FLAGS
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The reference README's CIFAR-10-4000 command, flag for flag.
REFERENCE_CIFAR10 = """
  --task_mode="train" --dataset_name="cifar10_4000_mpl"
  --output_dir="path/to/your/output/dir" --model_type="wrn-28-2"
  --log_every=100 --master="path/to/your/tpu/worker" --image_size=32
  --num_classes=10 --optim_type="momentum" --lr_decay_type="cosine"
  --save_every=1000 --use_bfloat16 --use_tpu --nouse_augment
  --reset_output_dir --eval_batch_size=64 --alsologtostderr
  --running_local_dev --train_batch_size=128 --uda_data=7
  --weight_decay=5e-4 --tpu_platform="your_tpu_platform"
  --tpu_topology="your_tpu_topology" --num_train_steps=300000
  --augment_magnitude=16 --batch_norm_batch_size=256
  --dense_dropout_rate=0.2 --ema_decay=0.995 --label_smoothing=0.15
  --mpl_student_lr_wait_steps=3000 --uda_steps=5000 --uda_temp=0.7
  --uda_threshold=0.6 --uda_weight=8
"""


def _argv(text):
    return ["mpl_tf"] + [a.replace('"', "") for a in text.split()]


@flagsaver.flagsaver
def test_reference_cifar10_command_line_parses():
    FLAGS(_argv(REFERENCE_CIFAR10))
    p = config.validate(mpl_flags.from_flags())
    assert p.dataset_name == "cifar10_4000_mpl"
    assert p.mode == "mpl"
    assert p.uda_data == 7 and p.train_batch_size == 128
    assert p.use_tpu and p.use_bfloat16 and not p.use_augment
    assert p.mpl_student_lr_wait_steps == 3000
    assert p.ema_decay == 0.995 and p.label_smoothing == 0.15
    assert "image_size" in p.explicit and "seed" not in p.explicit


@flagsaver.flagsaver
def test_every_flagfile_parses():
    for name in sorted(os.listdir(os.path.join(REPO, "flags"))):
        FLAGS(["mpl_tf", f"--flagfile={os.path.join(REPO, 'flags', name)}"])
        config.validate(mpl_flags.from_flags())
        FLAGS.unparse_flags()


def test_reference_defaults_kept():
    p = config.defaults()
    assert (p.batch_norm_decay, p.batch_norm_epsilon) == (0.99, 1e-3)
    assert (p.train_batch_size, p.eval_batch_size, p.image_size) == (128, 128, 32)
    assert (p.grad_bound, p.weight_decay, p.dense_dropout_rate) == (1e9, 1e-4, 0.1)
    assert (p.uda_data, p.uda_steps, p.uda_temp) == (4, 10000, 0.75)
    assert (p.mpl_student_lr, p.mpl_student_lr_wait_steps) == (0.1, 500)
    assert (p.save_every, p.log_every, p.ema_decay) == (1000, 10, 0.0)


@pytest.mark.parametrize("overrides,needle", [
    (dict(model_type="resnet-9000"),
     "--model_type='resnet-9000' is not known; choose one of: wrn-28-2"),
    (dict(dataset_name="mnist_50_mpl"),
     "--dataset_name='mnist_50_mpl' is not a dataset name; valid forms: "
     "digits_<N>"),
    (dict(dataset_name="digits_5000_mpl"),
     "asked for 5000 labeled images but only 1197 are available"),
    (dict(task_mode="fly"),
     "--task_mode='fly' is not valid; choose one of: train, finetune, eval, "
     "export"),
    (dict(label_smoothing=1.5), "--label_smoothing=1.5 is not valid"),
    (dict(train_batch_size=0), "--train_batch_size=0 is not valid"),
    (dict(iterations_per_loop=0),
     "--iterations_per_loop=0 is not valid; it must be >= 1"),
    (dict(num_classes=100), "--num_classes=100 conflicts with digits_50_mpl"),
    (dict(lr_decay_type="linear"), "--lr_decay_type='linear' is not valid"),
])
def test_bad_values_raise_clear_errors(tmp_path, overrides, needle):
    values = dict(dataset_name="digits_50_mpl", output_dir=str(tmp_path / "o"))
    values.update(overrides)
    with pytest.raises(ConfigError) as err:
        main.run(config.defaults(**values))
    assert needle in str(err.value)
    assert "\n" not in str(err.value)
    assert not os.path.exists(tmp_path / "o"), "nothing may be written"


def test_cli_error_is_one_line_with_status_2(tmp_path):
    cmd = [sys.executable, "-m", "mpl_tf.main", "--dataset_name=digits_50_mpl",
           f"--output_dir={tmp_path / 'o'}", "--strategy=mirrored",
           "--num_cpu_replicas=2", "--train_batch_size=7"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300,
                          cwd=REPO, check=False)
    assert proc.returncode == 2, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("mpl_tf: error: --train_batch_size=7 is not "
                           "divisible by the 2 replicas"), last
    assert not os.path.exists(tmp_path / "o")


@flagsaver.flagsaver
def test_schedule_steps_as_a_share_of_the_budget():
    FLAGS(["mpl_tf", "--dataset_name=digits_50_mpl", "--output_dir=/tmp/o",
           "--num_train_steps=2000", "--mpl_student_lr_wait_steps=10%",
           "--uda_steps=25%", "--mpl_teacher_lr_warmup_steps=2.5%",
           "--mpl_student_lr_warmup_steps=300", "--num_warmup_steps=0%"])
    p = config.validate(mpl_flags.from_flags())
    assert (p.mpl_student_lr_wait_steps, p.uda_steps,
            p.mpl_teacher_lr_warmup_steps, p.mpl_student_lr_warmup_steps,
            p.num_warmup_steps) == (200, 500, 50, 300, 0)
    p = config.validate(config.defaults(
        dataset_name="digits_50_mpl", output_dir="/tmp/o",
        num_train_steps=800, uda_steps="50%"))
    assert p.uda_steps == 400


@pytest.mark.parametrize("value", ["abc", "-3", "120%", "10.5"])
@flagsaver.flagsaver
def test_a_bad_step_count_names_the_flag(value):
    with pytest.raises(flags.IllegalFlagValueError,
                       match=f"--uda_steps={value}: .* give an integer"):
        FLAGS(["mpl_tf", f"--uda_steps={value}"])


def test_docs_flags_md_is_generated_from_the_config():
    with open(os.path.join(REPO, "docs", "flags.md"), encoding="utf-8") as f:
        assert f.read() == mpl_flags.markdown_table(), (
            "docs/flags.md is stale: python -m mpl_tf.flags > docs/flags.md")


def test_help_lists_mpl_tf_flags_by_topic_and_nothing_else():
    proc = subprocess.run([sys.executable, "-m", "mpl_tf.main", "--help"],
                          capture_output=True, text=True, timeout=300,
                          cwd=REPO, check=True)
    listed = re.findall(r"^  --(\w+) \(default: ", proc.stdout, re.M)
    assert sorted(listed) == sorted(mpl_flags.names())
    assert "--verbosity" not in proc.stdout  # absl's: under --helpfull
    titles = [line[:-1] for line in proc.stdout.splitlines()
              if line[:-1] in config.TOPICS.values()]
    assert titles == list(config.TOPICS.values())
