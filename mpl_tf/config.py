"""Every option of mpl_tf, defined once: name, type, default, help, topic
and check.

`StepConfig` holds what a train step reads: the Keras classes' arguments
(`mpl_tf.MetaPseudoLabels(..., label_smoothing=0.1)`). `RunConfig` adds
what a command-line run needs (data, model, schedules, devices, lifecycle).
The absl flags (flags.py), `--help`, docs/flags.md and a run's
hparams.json are generated from these two classes; `check` is the one place
where values are validated, for the command line and for `fit`.

Names and defaults follow the authors' `flag_utils.py` wherever the concept
exists there, so a command line written for the reference code parses here.
"""

import dataclasses
import math

from mpl_tf.errors import ConfigError

# The topics of `--help` and docs/flags.md, in their order.
TOPICS = {
    "data": "Data",
    "model": "Model",
    "training": "Training",
    "uda": "UDA (the teacher's consistency loss)",
    "mpl": "Meta Pseudo Labels",
    "reduced": "Reduced MPL",
    "devices": "Devices",
    "run": "Run lifecycle",
    "reference": "Accepted for the reference's command lines, ignored",
}


def option(default, help, topic, *, check=None, steps=False):
    """A field with its help text, `--help` topic and check.

    `check(value)` returns None when the value is valid, else what it must
    be ("in [0, 1)"). `steps`: a step count that may also be given as a
    share of --num_train_steps ("10%")."""
    return dataclasses.field(default=default, metadata={
        "help": help, "topic": topic, "check": check, "steps": steps})


# -- checks ---------------------------------------------------------------------

def one_of(*choices):
    def check(value):
        if value not in choices:
            return f"one of: {', '.join(map(str, choices))}"
        return None
    check.choices = choices
    return check


def at_least(low, strict=False, optional=False):
    def check(value):
        if value is None and optional:
            return None
        if value is None or value < low or (strict and value == low):
            return f"{'>' if strict else '>='} {low}"
        return None
    return check


def unit_interval(closed=False):
    def check(value):
        if not 0.0 <= value <= 1.0 or (not closed and value == 1.0):
            return f"in [0, 1{']' if closed else ')'}"
        return None
    return check


# -- the train step's options ----------------------------------------------------

@dataclasses.dataclass(frozen=True)
class StepConfig:
    """What a train step reads (names as the flags and the Keras
    arguments)."""

    label_smoothing: float = option(
        0.0, "Label smoothing for labeled and pseudo-labeled CE.",
        "training", check=unit_interval())
    weight_decay: float = option(
        1e-4, "L2 weight decay on every non-batch-norm weight.", "training",
        check=at_least(0.0))
    grad_bound: float = option(
        1e9, "Clip the gradient by this global norm, after summing over "
        "replicas.", "training", check=at_least(0.0, strict=True))
    ema_decay: float = option(
        0.0, "Decay of the student's (or supervised model's) moving "
        "average; 0 turns it off. The effective decay at step t is "
        "min(ema_decay, (t+1)/(t+10)).", "training", check=unit_interval())
    uda_temp: float = option(
        0.75, "Temperature of the teacher's target on the weak view.", "uda",
        check=at_least(0.0, strict=True))
    uda_threshold: float = option(
        0.6, "Unlabeled images count in the UDA loss only when the "
        "teacher's confidence on the weak view reaches this.", "uda",
        check=unit_interval(closed=True))
    uda_weight: float = option(1.0, "Final weight of the UDA loss.", "uda",
                               check=at_least(0.0))
    uda_steps: int = option(
        10000, "Steps over which the UDA weight ramps up linearly.", "uda",
        check=at_least(0), steps=True)
    mpl_feedback: str = option(
        "taylor", "taylor: the paper's first-order feedback h = CE_old - "
        "CE_new times the score of the pseudo label. exact: differentiate "
        "the student's post-update labeled loss through its (virtual SGD) "
        "update.", "mpl", check=one_of("taylor", "exact"))
    mpl_label: str = option(
        "hard", "Pseudo labels from the teacher's logits (on the view "
        "--mpl_label_view names): hard (argmax), sample (a draw from its "
        "distribution), soft (the distribution itself; needs "
        "--mpl_feedback=exact).", "mpl", check=one_of("hard", "sample", "soft"))
    mpl_label_view: str = option(
        "strong", "The teacher's view of an unlabeled image that labels the "
        "student's strong view: strong (the same image the student sees, as "
        "the reference does) or weak (the flip-and-crop view, as UDA's "
        "consistency target; the label is then less damaged by the strong "
        "augmentation).", "mpl", check=one_of("strong", "weak"))
    mpl_label_threshold: float = option(
        0.0, "Taylor feedback: the student learns an unlabeled image's pseudo "
        "label (and the teacher's MPL term scores it) only when the "
        "teacher's confidence on the image's weak view (the maximum of "
        "UDA's target, at --uda_temp) reaches this; images it is unsure of "
        "-- often images of none of your classes -- are left out. 0 keeps "
        "every image (the paper).", "mpl", check=unit_interval(closed=True))
    mpl_baseline_decay: float = option(
        0.99, "Decay of the moving baseline subtracted from the feedback "
        "(ours; the reference hard-codes 0.99).", "mpl",
        check=unit_interval())
    mpl_feedback_pairing: str = option(
        "paired", "How the feedback h = CE_old - CE_new is measured. paired: "
        "both on the labeled images alone, with the same batch-norm "
        "statistics and dropout mask, before and after the student's update "
        "(h is 0 when the student does not move; one more forward pass on "
        "the labeled batch). reference: CE_old from the student's training "
        "pass on unlabeled + labeled images, as the published code does "
        "(its h carries batch-norm and dropout noise).", "mpl",
        check=one_of("paired", "reference"))
    mpl_low_memory: bool = option(
        False, "Taylor feedback only: hold fewer activations for more "
        "compute, with the same numbers as the default step. WRN-28-k "
        "networks: recompute the whole teacher body in backprop, four "
        "segments one at a time, and the student's first group. Other "
        "networks: run the teacher's forward pass twice, once without a "
        "tape to label the student's batch and once with it after the "
        "student's update, so the two networks' activations are never held "
        "at the same time.", "mpl")
    mpl_recompute_teacher: bool = option(
        True, "WRN-28-k teacher: keep only the input and output of its first "
        "group of blocks (about half its activations) while the student "
        "trains, and recompute that group in backprop: the same numbers, "
        "about 13 % less peak memory for about 6-9 % more step time on a CPU "
        "at the reference shape. --nompl_recompute_teacher keeps the "
        "activations.", "mpl")
    seed: int = option(
        0, "Seed for the labeled split, initialisation, augmentation and "
        "sampled pseudo labels.", "data")


# -- a command-line run's options -------------------------------------------------

@dataclasses.dataclass(frozen=True)
class RunConfig(StepConfig):
    """A command-line run: the step's options and everything around them.

    `explicit`: the options the user set (not a flag)."""

    # Data
    dataset_name: str = option(
        None, "Data and training mode, e.g. digits_50_mpl. Suffix _mpl "
        "trains teacher and student (Meta Pseudo Labels), _uda the teacher "
        "alone (UDA), no suffix supervised on the labeled split only.",
        "data")
    data_dir: str = option(None, "TFDS data directory.", "data")
    data_download: bool = option(
        False, "Let TFDS download and prepare a dataset that --data_dir "
        "lacks (needs internet; e.g. on Colab). Off: a missing dataset "
        "stops the run at once with the command that prepares it.", "data")
    image_size: int = option(
        32, "Image side in pixels. Taken from the dataset unless given "
        "explicitly (digits may be resized to any size; the default for "
        "digits is 16).", "data")
    num_classes: int = option(
        10, "Number of classes. Taken from the dataset; giving a different "
        "value explicitly is an error.", "data")
    train_batch_size: int = option(
        128, "Labeled images per global step (B).", "data",
        check=at_least(1))
    eval_batch_size: int = option(128, "Images per evaluation batch.",
                                  "data", check=at_least(1))
    num_val: int = option(
        0, "Class-balanced labeled validation images carved out of the "
        "training data (never the test split), chosen by --seed before the "
        "labeled split; never trained on, not even as unlabeled. Evaluated "
        "next to test for model selection.", "data", check=at_least(0))
    labeled_in_unlabeled: bool = option(
        True, "Whether the labeled images also sit in the unlabeled pool, as "
        "in the reference and the PyTorch port (true). false: the unlabeled "
        "pool is the training data minus the labeled (and validation) "
        "images.", "data")
    train_dir: str = option(
        None, "image_folder*: labeled images, one subfolder per class (the "
        "folder name is the class).", "data")
    unlabeled_dir: str = option(
        None, "image_folder*: extra unlabeled images, any nesting; labels "
        "unused.", "data")
    eval_dir: str = option(
        None, "image_folder*: the test split, one subfolder per class of "
        "--train_dir.", "data")
    skip_bad_images: bool = option(
        False, "image_folder*: skip (and count) files that cannot be decoded "
        "instead of stopping with their list.", "data")
    svhn_use_extra: bool = option(
        False, "svhn_*: add SVHN's 531,131 'extra' images to the unlabeled "
        "pool (read by the streaming pipeline).", "data")
    use_augment: bool = option(
        False, "Supervised mode only: train on the strong (RandAugment + "
        "cutout) view of the labeled images instead of the weak view.",
        "data")
    augment_magnitude: int = option(
        5, "RandAugment magnitude on the reference's 0-30 scale (divided by "
        "30 for keras-cv's 0-1 scale).", "data", check=at_least(0))
    hflip: bool = option(
        None, "Flip training images horizontally at random (weak and strong "
        "views). Unset: the data source decides (off for digits and SVHN, "
        "on for CIFAR, ImageNet and image folders). Turn it off for digits, "
        "text or anything whose mirror image is another class.", "data")
    cutout_fraction: float = option(
        None, "Side of the strong view's cutout square as a share of the "
        "image side (0 turns cutout off). Unset: the data source decides "
        "(0.25 for digits, 0.5 for the others, the reference's 16 of 32).",
        "data", check=lambda v: None if v is None else
        unit_interval(closed=True)(v))
    randaugment: str = option(
        "stateless", "RandAugment engine. stateless: ours, reproducible from "
        "(seed, step), so resumed and multi-replica runs see the same "
        "images. keras_cv: keras-cv's layer; faster, not reproducible.",
        "data", check=one_of("stateless", "keras_cv"))

    # Model
    model_type: str = option("wrn-28-2", "Network for teacher and student.",
                             "model")
    teacher_model_type: str = option(
        None, "MPL: another network for the teacher (e.g. wrn-28-10 "
        "teaching a wrn-28-2 student); unset: --model_type.", "model")
    batch_norm_decay: float = option(
        0.99, "Batch-norm moving-average decay (Keras momentum).", "model",
        check=unit_interval())
    batch_norm_epsilon: float = option(1e-3, "Batch-norm epsilon.", "model",
                                       check=at_least(0.0, strict=True))
    batch_norm_batch_size: int = option(
        None, "Reference: images per batch-norm group on TPU. Here: if "
        "larger than a replica's labeled batch (train_batch_size / "
        "replicas), batch-norm statistics are synchronised over all "
        "replicas; otherwise per replica.", "model")
    dense_dropout_rate: float = option(
        0.1, "Dropout before the classifier layer.", "model",
        check=unit_interval())

    # Training
    num_train_steps: int = option(10000, "Global steps to train.",
                                  "training", check=at_least(1))
    optim_type: str = option(
        "momentum", "momentum (SGD, Nesterov 0.9) | sgd (no momentum).",
        "training", check=one_of("momentum", "sgd"))
    lr: float = option(
        0.016, "Supervised/UDA learning rate per 256 labeled images.",
        "training", check=at_least(0.0))
    num_warmup_steps: int = option(
        0, "Supervised/UDA: linear learning-rate warm-up steps.",
        "training", check=at_least(0), steps=True)
    lr_decay_type: str = option(
        "exponential", "exponential | cosine | constant.", "training",
        check=one_of("cosine", "exponential", "constant"))
    lr_decay_rate: float = option(0.97, "Factor for exponential decay.",
                                  "training")
    num_decay_steps: int = option(
        750, "lr_decay_type=exponential: steps per decay by lr_decay_rate.",
        "training", check=at_least(0))
    finetune_steps: int = option(
        0, "After MPL, finetune the EMA student on the labeled data alone "
        "for this many steps (0: no finetune stage). Also used by "
        "--task_mode=finetune.", "training", check=at_least(0))
    finetune_lr: float = option(
        3e-5, "Finetune learning rate (constant, SGD Nesterov 0.9, not "
        "scaled by batch size).", "training", check=at_least(0.0))

    # UDA
    uda_data: int = option(
        4, "Unlabeled images per labeled image in a step (mu).", "uda",
        check=at_least(1))

    # MPL
    mpl_teacher_lr: float = option(
        0.1, "Teacher learning rate per 256 labeled images.", "mpl",
        check=at_least(0.0))
    mpl_teacher_lr_warmup_steps: int = option(
        5000, "Teacher learning-rate warm-up steps.", "mpl",
        check=at_least(0), steps=True)
    mpl_student_lr: float = option(
        0.1, "Student learning rate per 256 labeled images.", "mpl",
        check=at_least(0.0))
    mpl_student_lr_wait_steps: int = option(
        500, "Steps with student lr 0 before its warm-up.", "mpl",
        check=at_least(0), steps=True)
    mpl_student_lr_warmup_steps: int = option(
        5000, "Student learning-rate warm-up steps.", "mpl",
        check=at_least(0), steps=True)

    # Reduced MPL
    teacher_labels: str = option(
        None, "Reduced MPL: with an _mpl dataset, the large teacher's stored "
        "class distributions (the teacher_labels/ directory "
        "--task_mode=label wrote under the teacher's --output_dir, or that "
        "output_dir). A small reduced teacher on them replaces the teacher "
        "network; the large teacher is never built.", "reduced")
    teacher_labels_top_k: int = option(
        0, "--task_mode=label: store the k largest probabilities per image "
        "instead of the whole float16 distribution (for many classes); 0 "
        "stores all.", "reduced", check=at_least(0))
    reduced_teacher_hidden: int = option(
        128, "Reduced MPL: hidden units of the reduced teacher, a residual "
        "MLP on the large teacher's log-probabilities that starts as the "
        "identity.", "reduced", check=at_least(1))

    # Devices
    strategy: str = option(
        "auto", "tf.distribute strategy. auto: TPU if --use_tpu, all local "
        "GPUs if more than one, else the default strategy.", "devices",
        check=one_of("auto", "default", "mirrored", "multi_worker", "tpu"))
    use_tpu: bool = option(False, "Train on a TPU (same as "
                           "--strategy=tpu).", "devices")
    master: str = option(
        None, "TPU address for TPUClusterResolver; unset or 'local' means a "
        "TPU VM's own TPU. Ignored unless a TPU strategy is used.",
        "devices")
    use_bfloat16: bool = option(
        False, "Compute in bfloat16 (Keras 'mixed_bfloat16' policy); logits "
        "and losses stay float32.", "devices")
    jit_compile: bool = option(
        False, "Compile the train step with XLA (tf.function(jit_compile="
        "True)). For the default strategy; TPUs compile anyway.", "devices")
    num_cpu_replicas: int = option(
        1, "Split the CPU into this many logical devices (to exercise "
        "multi-replica code on a CPU-only machine, with "
        "--strategy=mirrored).", "devices", check=at_least(1))

    # Run lifecycle
    task_mode: str = option(
        "train", "What to do: train | finetune | eval | export | label "
        "(store the trained network's class distributions of the training "
        "images for Reduced MPL).", "run",
        check=one_of("train", "finetune", "eval", "export", "label"))
    output_dir: str = option(
        None, "Directory for checkpoints, logs, hparams.json, export.", "run")
    reset_output_dir: bool = option(
        False, "Delete output_dir before training. The only flag that "
        "deletes anything.", "run")
    load_checkpoint: str = option(
        None, "Checkpoint path (or directory) to start from instead of the "
        "newest one in output_dir.", "run")
    load_checkpoint_and_restart_global_step: bool = option(
        False, "With --load_checkpoint: keep the weights but start counting "
        "steps at 0.", "run")
    save_every: int = option(
        1000, "Checkpoint and evaluate every this many steps.", "run",
        check=at_least(1))
    log_every: int = option(
        10, "Write TensorBoard scalars every this many steps.", "run",
        check=at_least(1))
    iterations_per_loop: int = option(
        None, "Training steps per call of the compiled training function "
        "(the reference's TPU name): a loop inside the call runs them with "
        "no return to Python in between, and metrics and the non-finite "
        "count are read once per loop. A loop also ends at every "
        "--log_every and --save_every step and at --num_train_steps, so "
        "logs, checkpoints and evaluations keep their steps (values above "
        "--log_every act as --log_every); on SIGTERM the run saves at the "
        "end of the running loop. Unset: --log_every.", "run",
        check=at_least(1, optional=True))
    keep_checkpoint_max: int = option(5, "Checkpoints kept in output_dir.",
                                      "run", check=at_least(1))
    max_nonfinite_steps: int = option(
        10, "A step whose losses, gradient norms, feedback or updated "
        "weights are NaN/Inf changes nothing (and is reported); more than "
        "this many such steps in a row save the last good state and stop "
        "the run.", "run", check=at_least(0))
    deterministic: bool = option(
        False, "Op determinism and a data order that is a function of "
        "(seed, step): an interrupted and resumed run ends with the weights "
        "of an uninterrupted one. Slower.", "run")
    eval_all_checkpoints: bool = option(
        False, "--task_mode=eval: evaluate every kept checkpoint, not just "
        "the newest, and pick the best one by validation accuracy (never by "
        "test).", "run")
    export_dir: str = option(
        None, "Where the SavedModel goes (default output_dir/export).", "run")

    # The reference's TPU infeed: accepted so its command lines parse.
    running_local_dev: bool = option(False, "Reference TPU-infeed flag.",
                                     "reference")
    tpu_topology: str = option("", "Reference TPU-infeed flag.", "reference")
    tpu_platform: str = option(None, "Reference TPU-infeed flag.",
                               "reference")
    num_infeed_threads: int = option(
        4, "Reference TPU-infeed flag (tf.data uses AUTOTUNE).", "reference")
    num_shards_per_worker: int = option(None, "Reference TPU-infeed flag.",
                                        "reference")

    explicit: frozenset = dataclasses.field(
        default=frozenset(), metadata={"flag": False}, compare=False)

    @property
    def mode(self):
        """"mpl", "uda" or "supervised", from --dataset_name's suffix."""
        from mpl_tf.data import registry
        return registry.parse(self.dataset_name).mode

    def is_set(self, name):
        """True if the user gave --name (on the command line, in a flagfile
        or as an override)."""
        return name in self.explicit

    def to_dict(self):
        """The options and their values (hparams.json's "flags")."""
        return {f.name: getattr(self, f.name) for f in options(type(self))}


# Options that decide the shapes of the weights or which images are
# labeled: an output_dir trained with other values cannot be resumed.
RUN_DEFINING = ("dataset_name", "model_type", "teacher_model_type",
                "image_size", "num_classes", "seed", "num_val",
                "labeled_in_unlabeled", "svhn_use_extra")


def options(cls=RunConfig):
    """The fields of `cls` that are options (flags)."""
    return [f for f in dataclasses.fields(cls) if f.metadata.get("flag", True)]


def defaults(**overrides):
    """A RunConfig with `overrides` (marked as set by the user)."""
    names = {f.name for f in options()}
    unknown = set(overrides) - names
    if unknown:
        raise KeyError(f"not mpl_tf options: {sorted(unknown)}")
    return RunConfig(**overrides, explicit=frozenset(overrides))


def step_config(cfg):
    """The StepConfig part of a RunConfig."""
    return StepConfig(**{f.name: getattr(cfg, f.name)
                         for f in options(StepConfig)})


def steps_share(value, num_train_steps):
    """A step count given as a share: `10%` of 2000 is 200."""
    if isinstance(value, str) and value.endswith("%"):
        return int(round(float(value[:-1]) / 100.0 * num_train_steps))
    return value


def resolve(cfg):
    """Step counts given as shares of --num_train_steps become counts."""
    shares = {f.name: steps_share(getattr(cfg, f.name), cfg.num_train_steps)
              for f in options(type(cfg)) if f.metadata["steps"]}
    return dataclasses.replace(cfg, **shares)


def _invalid(name, value, must, prefix):
    return ConfigError(f"{prefix}{name}={value!r} is not valid; "
                       + (f"choose {must}" if must.startswith("one of")
                          else f"it must be {must}"))


def check(cfg, prefix="--"):
    """Raise ConfigError (one line, naming the option) for an invalid value
    or combination; returns `cfg`. `prefix`: how options are named ("--"
    for flags, "" for the Keras arguments). The one validation of mpl_tf:
    the command line and the Keras classes both call it."""
    for f in options(type(cfg)):
        rule = f.metadata.get("check")
        value = getattr(cfg, f.name)
        if rule is None:
            continue
        if isinstance(value, float) and math.isnan(value):
            raise _invalid(f.name, value, "a number", prefix)
        must = rule(value)
        if must:
            raise _invalid(f.name, value, must, prefix)
    if cfg.mpl_label == "soft" and cfg.mpl_feedback != "exact":
        raise ConfigError(
            f"{prefix}mpl_label='soft' needs {prefix}mpl_feedback='exact': "
            "the Taylor feedback scores one discrete label; use hard or "
            "sample with taylor")
    if cfg.mpl_label_threshold > 0 and cfg.mpl_feedback != "taylor":
        raise ConfigError(
            f"{prefix}mpl_label_threshold works with {prefix}mpl_feedback="
            "'taylor' only")
    if cfg.mpl_low_memory and cfg.mpl_feedback != "taylor":
        raise ConfigError(
            f"{prefix}mpl_low_memory works with {prefix}mpl_feedback="
            "'taylor' only: the exact meta-gradient differentiates through "
            "the teacher's forward pass")
    if isinstance(cfg, RunConfig):
        _check_run(cfg)
    return cfg


def _check_run(cfg):
    """The rules between a run's options (flags only)."""
    from mpl_tf.data import registry
    from mpl_tf.models.registry import check_model_type

    if not cfg.dataset_name:
        raise ConfigError("--dataset_name is required, e.g. "
                          "--dataset_name=digits_50_mpl")
    registry.parse(cfg.dataset_name)
    if not cfg.output_dir:
        raise ConfigError("--output_dir is required: the directory for "
                          "checkpoints, logs and the export")
    check_model_type(cfg.model_type)
    if cfg.teacher_model_type:
        check_model_type(cfg.teacher_model_type, "teacher_model_type")
    if cfg.teacher_labels and cfg.task_mode != "label":
        if cfg.mode != "mpl":
            raise ConfigError(
                f"--teacher_labels is for Reduced MPL: use it with an _mpl "
                f"dataset, not --dataset_name={cfg.dataset_name}")
        if cfg.mpl_low_memory:
            raise ConfigError("--mpl_low_memory does nothing for Reduced MPL "
                              "(--teacher_labels): its teacher is a small MLP")
    if cfg.deterministic and cfg.randaugment != "stateless":
        raise ConfigError("--deterministic needs --randaugment=stateless: "
                          "keras-cv's RandAugment is not reproducible")
    if cfg.task_mode == "finetune" and cfg.finetune_steps < 1:
        raise ConfigError("--task_mode=finetune needs --finetune_steps >= 1")


def validate(cfg):
    """`resolve` then `check`: the run's configuration as it will be used."""
    if cfg.task_mode is None:  # absl's unset string flag
        cfg = dataclasses.replace(cfg, task_mode="train")
    return check(resolve(cfg))
