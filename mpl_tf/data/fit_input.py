"""tf.data input for `keras.Model.fit` (mpl_tf.MetaPseudoLabels, UDA,
Supervised): the train step's dict batches from numpy arrays or from one of
the tool's own sources, and (images, labels) batches for `evaluate`.

The batches are `pipeline.TrainInput`'s (the CLI's: the same draws, the same
weak and strong views). Each element is one GLOBAL batch; under a
tf.distribute strategy `fit` splits it over the replicas, and each replica's
share is exactly the rows TrainInput would give that replica.

Step t's batch is a function of (seed, t). A dataset from `train_dataset`
reads its first step from a variable that the model's `fit` sets to the
model's own step when training begins (after `BackupAndRestore` restored
it), so a resumed or continued `fit` gets the batches an uninterrupted run
would have seen. Pass the dataset to `fit` as returned: a dataset derived
from it (`.take`, `.map`) starts again at step 0.
"""

import numpy as np
import tensorflow as tf

from mpl_tf import config
from mpl_tf.data import loader, pipeline, teacher_labels
from mpl_tf.data.arrays import arrays_source
from mpl_tf.data.augment import AugmentConfig
from mpl_tf.data.source import Split, StreamedSplit

# The attribute of a dataset from this module holding its start-step variable.
START_STEP_ATTR = "_mpl_tf_start_step"
# ... and the labeled images' labels (checked against the networks' classes
# before `fit` trains).
LABELS_ATTR = "_mpl_tf_labels"

# The flags' defaults.
DEFAULT_BATCH_SIZE = config.RunConfig().train_batch_size
DEFAULT_UDA_DATA = config.RunConfig().uda_data
DEFAULT_MAGNITUDE = config.RunConfig().augment_magnitude
MODES = ("mpl", "uda", "supervised")


def augment_config(source, augment=None):
    """The CLI's augmentation of `source` (pad image_size/8, cutout from
    the source's fraction, its flip and fill, RandAugment magnitude 5 on the
    reference's 0..30 scale), with `augment` overriding fields by name:
    image_size, pad, hflip, fill, cutout, magnitude, ops_per_image,
    randaugment. An `AugmentConfig` is used as is."""
    if augment is not None and not isinstance(augment, dict):
        return augment
    augment = dict(augment or {})
    cfg = AugmentConfig.for_source(
        source, augment.pop("hflip", None),
        augment.pop("magnitude", DEFAULT_MAGNITUDE),
        augment.pop("randaugment", "stateless"))
    unknown = set(augment) - set(cfg.get_config())
    if unknown:
        raise ValueError(f"augment: unknown keys {sorted(unknown)}; known: "
                         f"{sorted(cfg.get_config())}")
    return type(cfg)(**{**cfg.get_config(), **augment})


def _stored(teacher_probs, source):
    """{"labeled", "unlabeled": StoredLabels} from a pair of arrays
    [N, C] aligned with the source's splits, or as given (a dict from
    `teacher_labels.load`)."""
    if teacher_probs is None or isinstance(teacher_probs, dict):
        return teacher_probs
    out = {}
    for name, probs in zip(("labeled", "unlabeled"), teacher_probs):
        probs = np.asarray(probs, np.float32)
        size = len(getattr(source, name))
        if probs.ndim != 2 or len(probs) != size:
            raise ValueError(f"teacher_probs ({name}): expected [{size}, "
                             f"classes] for the {size} {name} images, got "
                             f"shape {probs.shape}")
        out[name] = teacher_labels.StoredLabels(
            np.arange(size), probs.shape[1], probs=probs)
    return out


def source_train_dataset(source, batch_size=DEFAULT_BATCH_SIZE,
                         uda_data=DEFAULT_UDA_DATA, mode="mpl", augment=None,
                         seed=0, labeled_view="weak", start_step=0,
                         teacher_probs=None):
    """The train step's batches from a `Source` (e.g. `mpl_tf.data.digits
    .load(50, seed=0)` or `mpl_tf.data.load_source("cifar10_4000_mpl")`).

    mode: "mpl" or "uda" (labeled and unlabeled images: `l_images`,
    `l_labels`, `u_weak`, `u_strong`, and `u_labels` when the unlabeled
    images' classes are known) or "supervised" (labeled only).
    `batch_size`: labeled images per global step; `uda_data` unlabeled
    images per labeled one. `labeled_view`: "weak" (flip and crop) or
    "strong" (RandAugment; the CLI's supervised mode with --use_augment).
    `start_step`: the first step's index; an in-memory source's dataset
    is moved to the model's own step when `fit` begins. `teacher_probs`
    (Reduced MPL): the large teacher's class distributions of the labeled
    and the unlabeled images, (array [N_l, C], array [N_u, C]) in the
    splits' order, added to each batch as `l_teacher` and `u_teacher`.
    """
    if mode not in MODES:
        raise ValueError(f"mode={mode!r}: expected one of {MODES}")
    if mode != "supervised" and len(source.unlabeled) == 0:
        raise ValueError(f"mode={mode!r} needs unlabeled images")
    if batch_size < 1 or uda_data < 1:
        raise ValueError("batch_size and uda_data must be >= 1")
    if teacher_probs is not None and mode != "mpl":
        raise ValueError("teacher_probs are for Reduced MPL (mode='mpl')")
    train_input = pipeline.TrainInput(
        source, augment_config(source, augment), mode, batch_size,
        uda_data, seed, labeled_view=labeled_view,
        teacher_probs=_stored(teacher_probs, source))
    if source.streamed:
        # The streamed pipeline seeds its shuffles from a Python int: it
        # starts where it is told and does not follow the model's step.
        return train_input.dataset(start_step=int(start_step))
    start = tf.Variable(int(start_step), dtype=tf.int64, trainable=False,
                        name="data_start_step")
    dataset = train_input.dataset(start_step=start)
    setattr(dataset, START_STEP_ATTR, start)
    setattr(dataset, LABELS_ATTR, np.asarray(source.labeled.labels))
    return dataset


def train_dataset(labeled_images, labeled_labels, unlabeled_images=None, *,
                  batch_size=DEFAULT_BATCH_SIZE, uda_data=DEFAULT_UDA_DATA,
                  augment=None, seed=0, unlabeled_labels=None, mode=None,
                  labeled_view="weak", start_step=0, teacher_probs=None):
    """The train step's batches from numpy arrays, with the weak and strong
    views of the unlabeled images.

    Images [N, S, S, C] on the 0..255 scale (the networks get float32
    0..255: put any rescaling inside them). `mode` defaults to "mpl" with
    unlabeled images and "supervised" without (the batches of "mpl" and
    "uda" are the same). `augment`: a dict overriding the default
    augmentation (see `augment_config`), e.g. {"hflip": False,
    "magnitude": 10}. Infinite: give `fit` a `steps_per_epoch`.
    `teacher_probs` (Reduced MPL): (labeled, unlabeled) class
    distributions of a large teacher, arrays [N, C] in the images' order.
    """
    if mode is None:
        mode = "supervised" if unlabeled_images is None else "mpl"
    source = arrays_source(labeled_images, labeled_labels, unlabeled_images,
                           unlabeled_labels)
    return source_train_dataset(source, batch_size, uda_data, mode, augment,
                                seed, labeled_view, start_step, teacher_probs)


def eval_dataset(images, labels=None, batch_size=256):
    """(float32 images 0..255, int32 labels) batches for `evaluate`, in
    order, each image once. `images` may be a `Split` (e.g. `source.test`)
    or an array with `labels`."""
    if isinstance(images, (Split, StreamedSplit)):
        split = images
    else:
        split = Split(np.asarray(images),
                      np.asarray(labels).reshape(-1).astype(np.int32))
    return pipeline.eval_dataset(split, batch_size)


def load_source(dataset_name, **flags):
    """One of the CLI's datasets by its --dataset_name (e.g.
    "digits_50_mpl", "cifar10_4000_mpl"), with other flags as keyword
    arguments (seed, data_dir, image_size, num_val, ...). Defines the CLI's
    absl flags on first use."""
    return loader.load_source(config.defaults(dataset_name=dataset_name,
                                              **flags))
