"""Run parameters as data: built from the flags (or from defaults in tests),
checked once, recorded in output_dir/hparams.json.
"""

import types

from mpl_tf import flags as mpl_flags
from mpl_tf.data import names
from mpl_tf.errors import ConfigError
from mpl_tf.models.registry import check_model_type

TASK_MODES = ("train", "finetune", "eval", "export", "label")
LR_DECAY_TYPES = ("cosine", "exponential", "constant")
OPTIM_TYPES = ("momentum", "sgd")
MPL_FEEDBACKS = ("taylor", "exact")
MPL_LABELS = ("hard", "sample", "soft")
MPL_LABEL_VIEWS = ("strong", "weak")
MPL_FEEDBACK_PAIRINGS = ("paired", "reference")


class Params(types.SimpleNamespace):
    """Flag values by name, plus which of them the user set explicitly."""

    explicit = frozenset()

    def to_dict(self):
        return {k: v for k, v in sorted(vars(self).items()) if k != "explicit"}

    @property
    def mode(self):
        return names.parse(self.dataset_name).mode


def explicitly_set(params, name):
    return name in params.explicit


def from_flags():
    values = mpl_flags.as_dict()
    params = Params(**values)
    params.explicit = frozenset(n for n in values if mpl_flags.explicitly_set(n))
    return params


def defaults(**overrides):
    """Flag defaults with `overrides` (marked as explicitly set)."""
    values = {n: mpl_flags.FLAGS[n].default for n in mpl_flags.names()}
    unknown = set(overrides) - set(values)
    if unknown:
        raise KeyError(f"not mpl_tf flags: {sorted(unknown)}")
    values.update(overrides)
    params = Params(**values)
    params.explicit = frozenset(overrides)
    return params


def _choice(params, name, choices):
    value = getattr(params, name)
    if value not in choices:
        raise ConfigError(f"--{name}={value!r} is not valid; choose one of: "
                          f"{', '.join(choices)}")


def _at_least(params, name, low, strict=False):
    value = getattr(params, name)
    if value is None or value < low or (strict and value == low):
        rel = ">" if strict else ">="
        raise ConfigError(f"--{name}={value!r} is not valid; it must be "
                          f"{rel} {low}")


def _in_unit(params, name, high_open=True):
    value = getattr(params, name)
    if not 0.0 <= value <= 1.0 or (high_open and value == 1.0):
        top = "1)" if high_open else "1]"
        raise ConfigError(f"--{name}={value!r} is not valid; it must be in "
                          f"[0, {top}")


# Step counts that may be given as a share of --num_train_steps ("10%").
SCHEDULE_STEPS = ("num_warmup_steps", "uda_steps", "mpl_student_lr_wait_steps",
                  "mpl_student_lr_warmup_steps", "mpl_teacher_lr_warmup_steps")


def validate(params):
    """Raise ConfigError (one line, naming the flag) for any invalid value."""
    if params.task_mode is None:
        params.task_mode = "train"
    _choice(params, "task_mode", TASK_MODES)
    for name in SCHEDULE_STEPS:  # "10%" -> 10 % of --num_train_steps
        setattr(params, name, mpl_flags.steps_share(getattr(params, name),
                                                    params.num_train_steps))
    if not params.dataset_name:
        raise ConfigError("--dataset_name is required, e.g. "
                          "--dataset_name=digits_50_mpl")
    names.parse(params.dataset_name)
    if not params.output_dir:
        raise ConfigError("--output_dir is required: the directory for "
                          "checkpoints, logs and the export")
    check_model_type(params.model_type)
    if params.teacher_model_type:
        check_model_type(params.teacher_model_type, "teacher_model_type")
    _choice(params, "lr_decay_type", LR_DECAY_TYPES)
    _choice(params, "optim_type", OPTIM_TYPES)
    _choice(params, "mpl_feedback", MPL_FEEDBACKS)
    _choice(params, "mpl_label", MPL_LABELS)
    _choice(params, "mpl_label_view", MPL_LABEL_VIEWS)
    _choice(params, "mpl_feedback_pairing", MPL_FEEDBACK_PAIRINGS)
    if params.mpl_label == "soft" and params.mpl_feedback != "exact":
        raise ConfigError(
            "--mpl_label=soft needs --mpl_feedback=exact: the Taylor feedback "
            "scores one discrete label; use hard or sample with taylor")
    if params.mpl_low_memory and params.mpl_feedback != "taylor":
        raise ConfigError(
            "--mpl_low_memory works with --mpl_feedback=taylor only: the exact "
            "meta-gradient differentiates through the teacher's forward pass")
    for name in ("train_batch_size", "eval_batch_size", "num_train_steps",
                 "save_every", "log_every", "uda_data", "keep_checkpoint_max",
                 "num_cpu_replicas"):
        _at_least(params, name, 1)
    if params.iterations_per_loop is not None:
        _at_least(params, "iterations_per_loop", 1)
    for name in ("num_warmup_steps", "uda_steps", "mpl_student_lr_wait_steps",
                 "mpl_student_lr_warmup_steps", "mpl_teacher_lr_warmup_steps",
                 "num_decay_steps", "augment_magnitude", "num_val"):
        _at_least(params, name, 0)
    if params.teacher_labels and params.task_mode != "label":
        if params.mode != "mpl":
            raise ConfigError(
                f"--teacher_labels is for Reduced MPL: use it with an _mpl "
                f"dataset, not --dataset_name={params.dataset_name}")
        if params.mpl_low_memory:
            raise ConfigError("--mpl_low_memory does nothing for Reduced MPL "
                              "(--teacher_labels): its teacher is a small MLP")
    _at_least(params, "teacher_labels_top_k", 0)
    _at_least(params, "reduced_teacher_hidden", 1)
    for name in ("max_nonfinite_steps", "finetune_steps"):
        _at_least(params, name, 0)
    if params.deterministic and params.randaugment != "stateless":
        raise ConfigError("--deterministic needs --randaugment=stateless: "
                          "keras-cv's RandAugment is not reproducible")
    if params.task_mode == "finetune" and params.finetune_steps < 1:
        raise ConfigError("--task_mode=finetune needs --finetune_steps >= 1")
    for name in ("finetune_lr", "lr", "mpl_student_lr", "mpl_teacher_lr", "weight_decay"):
        _at_least(params, name, 0.0)
    for name in ("uda_temp", "grad_bound"):
        _at_least(params, name, 0.0, strict=True)
    for name in ("label_smoothing", "ema_decay", "dense_dropout_rate",
                 "mpl_baseline_decay", "batch_norm_decay"):
        _in_unit(params, name)
    _in_unit(params, "uda_threshold", high_open=False)
    _at_least(params, "batch_norm_epsilon", 0.0, strict=True)
    return params
