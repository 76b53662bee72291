"""Every command-line flag of mpl_tf, in one place.

Names and defaults follow the authors' `flag_utils.py` wherever the concept
exists there, so a command line written for the reference code parses here.
Flags that only steered Google's TPU infeed are accepted and documented as
no-ops (see `TPU_INFEED_FLAGS`).
"""

from absl import flags

FLAGS = flags.FLAGS


class StepsParser(flags.ArgumentParser):
    """A step count: an integer (`500`) or a share of --num_train_steps
    (`10%`), so a schedule keeps its shape when the budget changes."""

    syntactic_help = "an integer, or a percentage of --num_train_steps"

    def parse(self, argument):
        if isinstance(argument, int):
            value = argument
        else:
            text = str(argument).strip()
            try:
                if text.endswith("%"):
                    share = float(text[:-1])
                    if not 0.0 <= share <= 100.0:
                        raise ValueError
                    return text
                value = int(text)
            except ValueError:
                raise ValueError(f"{argument!r} is not a step count: give an "
                                 "integer like 500 or a percentage of "
                                 "--num_train_steps like 10%") from None
        if value < 0:
            raise ValueError(f"{value} is negative: give an integer >= 0 or "
                             "a percentage of --num_train_steps like 10%")
        return value

    def flag_type(self):
        return "steps"


def steps_share(value, num_train_steps):
    """A StepsParser value as a step count: `10%` of 2000 is 200."""
    if isinstance(value, str) and value.endswith("%"):
        return int(round(float(value[:-1]) / 100.0 * num_train_steps))
    return value


def DEFINE_steps(name, default, help):  # pylint: disable=invalid-name,redefined-builtin
    flags.DEFINE(StepsParser(), name, default, help,
                 serializer=flags.ArgumentSerializer())

# --- Run control (reference names) -------------------------------------------
flags.DEFINE_string(
    "task_mode", None,
    "What to do: train | finetune | eval | export | label (store the "
    "trained network's class distributions of the training images for "
    "Reduced MPL). Unset means train.")
flags.DEFINE_string(
    "dataset_name", None,
    "Data and training mode, e.g. digits_50_mpl. Suffix _mpl trains teacher "
    "and student (Meta Pseudo Labels), _uda the teacher alone (UDA), no "
    "suffix supervised on the labeled split only.")
flags.DEFINE_string("output_dir", None,
                    "Directory for checkpoints, logs, hparams.json, export.")
flags.DEFINE_boolean(
    "reset_output_dir", False,
    "Delete output_dir before training. The only flag that deletes anything.")
flags.DEFINE_string(
    "load_checkpoint", None,
    "Checkpoint path (or directory) to start from instead of the newest one "
    "in output_dir.")
flags.DEFINE_boolean(
    "load_checkpoint_and_restart_global_step", False,
    "With --load_checkpoint: keep the weights but start counting steps at 0.")
flags.DEFINE_integer("save_every", 1000,
                     "Checkpoint and evaluate every this many steps.")
flags.DEFINE_integer("log_every", 10,
                     "Write TensorBoard scalars every this many steps.")
flags.DEFINE_integer(
    "iterations_per_loop", None,
    "Training steps per call of the compiled training function (the "
    "reference's TPU name): a loop inside the call runs them with no return "
    "to Python in between, and metrics and the non-finite count are read "
    "once per loop. A loop also ends at every --log_every and --save_every "
    "step and at --num_train_steps, so logs, checkpoints and evaluations "
    "keep their steps (values above --log_every act as --log_every); on "
    "SIGTERM the run saves at the end of the running loop. Unset: "
    "--log_every.")

# --- Hardware (reference names) -----------------------------------------------
flags.DEFINE_string(
    "master", None,
    "TPU address for TPUClusterResolver; unset or 'local' means a TPU VM's "
    "own TPU. Ignored unless a TPU strategy is used.")
flags.DEFINE_boolean("use_tpu", False,
                     "Train on a TPU (same as --strategy=tpu).")
flags.DEFINE_boolean(
    "use_bfloat16", False,
    "Compute in bfloat16 (Keras 'mixed_bfloat16' policy); logits and losses "
    "stay float32.")
flags.DEFINE_boolean(
    "jit_compile", False,
    "Compile the train step with XLA (tf.function(jit_compile=True)). For "
    "the default strategy; TPUs compile anyway.")
flags.DEFINE_enum(
    "strategy", "auto", ["auto", "default", "mirrored", "multi_worker", "tpu"],
    "tf.distribute strategy. auto: TPU if --use_tpu, all local GPUs if more "
    "than one, else the default strategy.")
flags.DEFINE_integer(
    "num_cpu_replicas", 1,
    "Split the CPU into this many logical devices (to exercise multi-replica "
    "code on a CPU-only machine, with --strategy=mirrored).")

# Accepted for command-line compatibility with the reference; they configured
# Google's TPU infeed and mean nothing here.
flags.DEFINE_boolean("running_local_dev", False,
                     "Reference TPU-infeed flag; accepted and ignored.")
flags.DEFINE_string("tpu_topology", "",
                    "Reference TPU-infeed flag; accepted and ignored.")
flags.DEFINE_string("tpu_platform", None,
                    "Reference TPU-infeed flag; accepted and ignored.")
flags.DEFINE_integer("num_infeed_threads", 4,
                     "Reference TPU-infeed flag; accepted and ignored "
                     "(tf.data uses AUTOTUNE).")
flags.DEFINE_integer("num_shards_per_worker", None,
                     "Reference TPU-infeed flag; accepted and ignored.")
TPU_INFEED_FLAGS = ("running_local_dev", "tpu_topology", "tpu_platform",
                    "num_infeed_threads", "num_shards_per_worker")

# --- Data ---------------------------------------------------------------------
flags.DEFINE_integer("seed", 0,
                     "Seed for the labeled split, initialisation and "
                     "augmentation.")
flags.DEFINE_string("data_dir", None, "TFDS data directory.")
flags.DEFINE_boolean(
    "data_download", False,
    "Let TFDS download and prepare a dataset that --data_dir lacks (needs "
    "internet; e.g. on Colab). Off: a missing dataset stops the run at once "
    "with the command that prepares it.")
flags.DEFINE_integer(
    "image_size", 32,
    "Image side in pixels. Taken from the dataset unless given explicitly "
    "(digits may be resized to any size; the default for digits is 16).")
flags.DEFINE_integer(
    "num_classes", 10,
    "Number of classes. Taken from the dataset; giving a different value "
    "explicitly is an error.")
flags.DEFINE_integer("train_batch_size", 128,
                     "Labeled images per global step (B).")
flags.DEFINE_integer("eval_batch_size", 128, "Images per evaluation batch.")
flags.DEFINE_boolean(
    "use_augment", False,
    "Supervised mode only: train on the strong (RandAugment + cutout) view of "
    "the labeled images instead of the weak view.")
flags.DEFINE_enum(
    "randaugment", "stateless", ["stateless", "keras_cv"],
    "RandAugment engine. stateless: ours, reproducible from (seed, step), "
    "so resumed and multi-replica runs see the same images. keras_cv: "
    "keras-cv's layer; faster, not reproducible.")
flags.DEFINE_boolean(
    "hflip", None,
    "Flip training images horizontally at random (weak and strong views). "
    "Unset: the data source decides (off for digits and SVHN, on for CIFAR, "
    "ImageNet and image folders). Turn it off for digits, text or anything "
    "whose mirror image is another class.")
flags.DEFINE_integer(
    "augment_magnitude", 5,
    "RandAugment magnitude on the reference's 0-30 scale (divided by 30 for "
    "keras-cv's 0-1 scale).")

# --- Data sources (issue 4) ---------------------------------------------------
flags.DEFINE_integer(
    "num_val", 0,
    "Class-balanced labeled validation images carved out of the training "
    "data (never the test split), chosen by --seed before the labeled split; "
    "never trained on, not even as unlabeled. Evaluated next to test for "
    "model selection.")
flags.DEFINE_boolean(
    "labeled_in_unlabeled", True,
    "Whether the labeled images also sit in the unlabeled pool, as in the "
    "reference and the PyTorch port (true). false: the unlabeled pool is the "
    "training data minus the labeled (and validation) images.")
flags.DEFINE_boolean(
    "svhn_use_extra", False,
    "svhn_*: add SVHN's 531,131 'extra' images to the unlabeled pool (read "
    "by the streaming pipeline).")
flags.DEFINE_string(
    "train_dir", None,
    "image_folder*: labeled images, one subfolder per class (the folder name "
    "is the class).")
flags.DEFINE_string(
    "unlabeled_dir", None,
    "image_folder*: extra unlabeled images, any nesting; labels unused.")
flags.DEFINE_string(
    "eval_dir", None,
    "image_folder*: the test split, one subfolder per class of --train_dir.")
flags.DEFINE_boolean(
    "skip_bad_images", False,
    "image_folder*: skip (and count) files that cannot be decoded instead of "
    "stopping with their list.")

# --- Model --------------------------------------------------------------------
flags.DEFINE_string("model_type", "wrn-28-2",
                    "Network for teacher and student.")
flags.DEFINE_string(
    "teacher_model_type", None,
    "MPL: another network for the teacher (e.g. wrn-28-10 teaching a "
    "wrn-28-2 student); unset: --model_type.")
flags.DEFINE_float("batch_norm_decay", 0.99,
                   "Batch-norm moving-average decay (Keras momentum).")
flags.DEFINE_float("batch_norm_epsilon", 1e-3, "Batch-norm epsilon.")
flags.DEFINE_integer(
    "batch_norm_batch_size", None,
    "Reference: images per batch-norm group on TPU. Here: if larger than a "
    "replica's labeled batch (train_batch_size / replicas), batch-norm "
    "statistics are synchronised over all replicas; otherwise per replica.")
flags.DEFINE_float("dense_dropout_rate", 0.1,
                   "Dropout before the classifier layer.")

# --- Optimisation -------------------------------------------------------------
flags.DEFINE_integer("num_train_steps", 10000, "Global steps to train.")
DEFINE_steps("num_warmup_steps", 0,
             "Supervised/UDA: linear learning-rate warm-up steps.")
flags.DEFINE_integer("num_decay_steps", 750,
                     "lr_decay_type=exponential: steps per decay by "
                     "lr_decay_rate.")
flags.DEFINE_float("lr", 0.016,
                   "Supervised/UDA learning rate per 256 labeled images.")
flags.DEFINE_string("lr_decay_type", "exponential",
                    "exponential | cosine | constant.")
flags.DEFINE_float("lr_decay_rate", 0.97, "Factor for exponential decay.")
flags.DEFINE_string("optim_type", "momentum",
                    "momentum (SGD, Nesterov 0.9) | sgd (no momentum).")
flags.DEFINE_float("weight_decay", 1e-4,
                   "L2 weight decay on every non-batch-norm weight.")
flags.DEFINE_float(
    "grad_bound", 1e9,
    "Clip the gradient by this global norm, after summing over replicas.")
flags.DEFINE_float("label_smoothing", 0.0,
                   "Label smoothing for labeled and pseudo-labeled CE.")
flags.DEFINE_float(
    "ema_decay", 0.0,
    "Decay of the student's (or supervised model's) moving average; 0 turns "
    "it off. The effective decay at step t is min(ema_decay, (t+1)/(t+10)).")
flags.DEFINE_integer("keep_checkpoint_max", 5,
                     "Checkpoints kept in output_dir.")
flags.DEFINE_integer(
    "max_nonfinite_steps", 10,
    "A step whose losses, gradient norms, feedback or updated weights are "
    "NaN/Inf changes nothing (and is reported); more than this many such "
    "steps in a row save the last good state and stop the run.")
flags.DEFINE_boolean(
    "deterministic", False,
    "Op determinism and a data order that is a function of (seed, step): "
    "an interrupted and resumed run ends with the weights of an "
    "uninterrupted one. Slower.")

# --- UDA (reference names) ----------------------------------------------------
flags.DEFINE_integer("uda_data", 4,
                     "Unlabeled images per labeled image in a step (mu).")
DEFINE_steps("uda_steps", 10000,
             "Steps over which the UDA weight ramps up linearly.")
flags.DEFINE_float("uda_temp", 0.75,
                   "Temperature of the teacher's target on the weak view.")
flags.DEFINE_float("uda_weight", 1.0, "Final weight of the UDA loss.")
flags.DEFINE_float(
    "uda_threshold", 0.6,
    "Unlabeled images count in the UDA loss only when the teacher's "
    "confidence on the weak view reaches this.")

# --- MPL (reference names) ----------------------------------------------------
flags.DEFINE_float("mpl_student_lr", 0.1,
                   "Student learning rate per 256 labeled images.")
DEFINE_steps("mpl_student_lr_wait_steps", 500,
             "Steps with student lr 0 before its warm-up.")
DEFINE_steps("mpl_student_lr_warmup_steps", 5000,
             "Student learning-rate warm-up steps.")
flags.DEFINE_float("mpl_teacher_lr", 0.1,
                   "Teacher learning rate per 256 labeled images.")
DEFINE_steps("mpl_teacher_lr_warmup_steps", 5000,
             "Teacher learning-rate warm-up steps.")
flags.DEFINE_string(
    "mpl_feedback", "taylor",
    "taylor: the paper's first-order feedback h = CE_old - CE_new times the "
    "score of the pseudo label. exact: differentiate the student's "
    "post-update labeled loss through its (virtual SGD) update.")
flags.DEFINE_string(
    "mpl_label", "hard",
    "Pseudo labels from the teacher's logits (on the view --mpl_label_view "
    "names): hard (argmax), sample (a draw from its distribution), soft (the "
    "distribution itself; needs --mpl_feedback=exact).")
flags.DEFINE_string(
    "mpl_label_view", "strong",
    "The teacher's view of an unlabeled image that labels the student's "
    "strong view: strong (the same image the student sees, as the reference "
    "does) or weak (the flip-and-crop view, as UDA's consistency target; "
    "the label is then less damaged by the strong augmentation).")
flags.DEFINE_bool(
    "mpl_low_memory", False,
    "Taylor feedback only: hold fewer activations for more compute, with "
    "the same numbers as the default step. WRN-28-k networks: recompute "
    "the whole teacher body in backprop, four segments one at a time, and "
    "the student's first group. Other networks: run the teacher's forward "
    "pass twice, once without a tape to label the student's batch and once "
    "with it after the student's update, so the two networks' activations "
    "are never held at the same time.")
flags.DEFINE_bool(
    "mpl_recompute_teacher", True,
    "WRN-28-k teacher: keep only the input and output of its first group "
    "of blocks (about half its activations) while the student trains, and "
    "recompute that group in backprop: the same numbers, about 13 % less "
    "peak memory for about 6-9 % more step time on a CPU at the reference "
    "shape. --nompl_recompute_teacher keeps the activations.")
flags.DEFINE_string(
    "mpl_feedback_pairing", "paired",
    "How the feedback h = CE_old - CE_new is measured. paired: both on the "
    "labeled images alone, with the same batch-norm statistics and dropout "
    "mask, before and after the student's update (h is 0 when the student "
    "does not move; one more forward pass on the labeled batch). reference: "
    "CE_old from the student's training pass on unlabeled + labeled images, "
    "as the published code does (its h carries batch-norm and dropout noise).")
# --- Reduced MPL (MPL_SPEC section 7) ---------------------------------------------
flags.DEFINE_string(
    "teacher_labels", None,
    "Reduced MPL: with an _mpl dataset, the large teacher's stored class "
    "distributions (the teacher_labels/ directory --task_mode=label wrote "
    "under the teacher's --output_dir, or that output_dir). A small reduced "
    "teacher on them replaces the teacher network; the large teacher is "
    "never built.")
flags.DEFINE_integer(
    "teacher_labels_top_k", 0,
    "--task_mode=label: store the k largest probabilities per image instead "
    "of the whole float16 distribution (for many classes); 0 stores all.")
flags.DEFINE_integer(
    "reduced_teacher_hidden", 128,
    "Reduced MPL: hidden units of the reduced teacher, a residual MLP on the "
    "large teacher's log-probabilities that starts as the identity.")
flags.DEFINE_float("mpl_baseline_decay", 0.99,
                   "Decay of the moving baseline subtracted from the "
                   "feedback (ours; the reference hard-codes 0.99).")

# --- Finetune and evaluation ----------------------------------------------------
flags.DEFINE_integer(
    "finetune_steps", 0,
    "After MPL, finetune the EMA student on the labeled data alone for this "
    "many steps (0: no finetune stage). Also used by --task_mode=finetune.")
flags.DEFINE_float("finetune_lr", 3e-5,
                   "Finetune learning rate (constant, SGD Nesterov 0.9, not "
                   "scaled by batch size).")
flags.DEFINE_boolean(
    "eval_all_checkpoints", False,
    "--task_mode=eval: evaluate every kept checkpoint, not just the newest, "
    "and pick the best one by validation accuracy (never by test).")

# --- Output -------------------------------------------------------------------
flags.DEFINE_string("export_dir", None,
                    "Where the SavedModel goes (default output_dir/export).")

# Flags that decide the shapes of the weights or which images are labeled: an
# existing output_dir trained with other values cannot be resumed.
RUN_DEFINING_FLAGS = ("dataset_name", "model_type", "teacher_model_type",
                      "image_size",
                      "num_classes", "seed",
                      # issue 4: they change which images are labeled/used
                      "num_val", "labeled_in_unlabeled", "svhn_use_extra")


def names():
    """Names of every flag this module defines (absl's own excluded)."""
    return sorted(n for n, f in FLAGS._flags().items()  # pylint: disable=protected-access
                  if n == f.name and _defined_here(f))


def _defined_here(flag):
    module = FLAGS.find_module_defining_flag(flag.name, default="")
    return module.endswith("mpl_tf.flags") or module.endswith("mpl_tf/flags.py")


def as_dict():
    """Every mpl_tf flag and its current value."""
    return {n: FLAGS[n].value for n in names()}


def explicitly_set(name):
    """True if the user gave --name on the command line or in a flagfile."""
    return FLAGS[name].present > 0
