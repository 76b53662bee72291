"""Any source, in memory or streamed, into the train step's batches (and
eval batches), for any tf.distribute strategy.

Element i of an input pipeline's dataset feeds replica i mod (local
replicas) at step start_step + i div (local replicas): the order in which
`distribute_datasets_from_function` hands elements to replicas. Each
element is one replica's batch (global batch / replicas in sync), a dict:
`l_images` [b,H,W,C] float32 0..255, `l_labels` [b] int32; for uda/mpl
also `u_weak`, `u_strong` [mu*b,H,W,C] and, when the unlabeled images'
true classes are known (diagnostics only), `u_labels` [mu*b] (-1 where
unknown, OUT_OF_CLASSES for an image of none of the classes) and, when some
are known to be of none, `u_out_of_classes` [mu*b] (1.0 for those); with
stored teacher labels (Reduced MPL) `l_teacher` and
`u_teacher` [b or mu*b, classes] float32, looked up by each image's key.

Where the images come from is the only difference between sources:
- In memory (`Split`): step t's global batch is a seeded draw without
  replacement from each split, and each replica takes its slice. So a
  resumed run sees the data it would have seen, and one device and N
  replicas see the same global batch.
- Streamed (`StreamedSplit`: SVHN's extra images, ImageNet): the images
  stay in the files. Each input pipeline (one per host) reads its own
  share, shuffles files and records, repeats, decodes in parallel and
  batches per replica. A stream is seeded by (--seed, start step, input
  pipeline id); with `deterministic=True` (tests; slower) the same seed,
  start step and device layout give the same images in the same order, by
  default tf.data may reorder for speed. Step t's images are NOT a function
  of (seed, t) alone: a run resumed at step s starts a fresh shuffle seeded
  by s (it does not replay the images of steps before s, nor see exactly
  what an uninterrupted run would have).
Either way the views (augment/views.py) depend only on (seed, step,
replica).

For `keras.Model.fit` (mpl_tf.MetaPseudoLabels, UDA, Supervised):
`train_dataset` (from arrays) and `source_train_dataset` (from a `Source`)
give the same batches as the command line, one GLOBAL batch per element
(under a strategy `fit` splits it over the replicas, and each replica's
share is exactly the rows TrainInput would give that replica). Step t's
batch is a function of (seed, t); a dataset reads its first step from a
variable that the model's `fit` sets to the model's own step when training
begins (after `BackupAndRestore` restored it), so a resumed or continued
`fit` gets the batches an uninterrupted run would have seen. Pass the
dataset to `fit` as returned: a dataset derived from it (`.take`, `.map`)
starts again at step 0. `eval_dataset` serves both the command line's
evaluation and `evaluate`.
"""

import numpy as np
import tensorflow as tf

from mpl_tf import config
from mpl_tf.data import registry, teacher_labels
from mpl_tf.data.augment.ops import augment_config
from mpl_tf.data.augment.views import Views
from mpl_tf.data.source import (OUT_OF_CLASSES, Split, StreamedSplit,
                                pipeline_layout)
from mpl_tf.data.sources.arrays import arrays_source

AUTOTUNE = tf.data.AUTOTUNE
# The attribute of a dataset from `source_train_dataset` holding its
# start-step variable, and the one holding the labeled images' labels
# (checked against the networks' classes before `fit` trains).
START_STEP_ATTR = "_mpl_tf_start_step"
LABELS_ATTR = "_mpl_tf_labels"
DEFAULT_BATCH_SIZE = config.RunConfig().train_batch_size
DEFAULT_UDA_DATA = config.RunConfig().uda_data
# Shuffle buffer of a small in-memory split streamed beside a streamed one.
_MAX_MEMORY_SHUFFLE = 50_000


def _draw_indices(num_items, total, seed):
    """`total` indices into range(num_items): a seeded permutation, tiled."""
    repeats = -(-total // num_items)  # ceil
    perms = [tf.random.experimental.stateless_shuffle(
        tf.range(num_items), seed=tf.random.fold_in(seed, r))
             for r in range(repeats)]
    return tf.concat(perms, axis=0)[:total]


def stream_seed(seed, start_step, pipeline_id, which):
    """A tf.data seed for one stream of one pipeline of one (re)start."""
    state = np.random.SeedSequence([seed, start_step, pipeline_id, which])
    return int(state.generate_state(1)[0])


def _stream(split, input_context, seed):
    """(image uint8, label int32, key int64) of `split`, shuffled and
    repeated; keys as `teacher_labels` keys them."""
    if isinstance(split, StreamedSplit):
        return split.read(input_context, training=True, seed=seed,
                          keyed=True)
    # A small in-memory split next to a streamed one (SVHN's labeled images).
    labels = (split.labels if split.labels is not None
              else np.full([len(split)], -1, np.int32))
    ds = tf.data.Dataset.from_tensor_slices(
        (split.images, labels, np.arange(len(split), dtype=np.int64)))
    pipeline_id, num_pipelines, _ = pipeline_layout(input_context)
    if num_pipelines > 1:
        ds = ds.shard(num_pipelines, pipeline_id)
    return ds.shuffle(min(len(split), _MAX_MEMORY_SHUFFLE), seed=seed).repeat()


class TrainInput:
    """Builds the training dataset of one mode (elements: module docstring).

    `deterministic` fixes the element order of streamed sources (for tests;
    slower); in-memory ones are always ordered. `teacher_probs` (Reduced
    MPL): {"labeled": StoredLabels, "unlabeled": StoredLabels}
    (`teacher_labels.read`).
    """

    def __init__(self, source, aug_cfg, mode, global_batch, uda_data, seed,
                 labeled_view="weak", deterministic=False, teacher_probs=None):
        self.source = source
        self.aug_cfg = aug_cfg
        self.mode = mode
        self.global_batch = global_batch
        self.uda_data = uda_data
        self.seed = seed
        self.labeled_view = labeled_view
        self.deterministic = deterministic
        self.teacher_probs = teacher_probs

    def dataset(self, input_context=None, start_step=0):
        pipeline_id, num_pipelines, replicas = pipeline_layout(input_context)
        local = replicas // num_pipelines
        per_replica = self.global_batch // replicas
        unlabeled = self.mode != "supervised"
        views = Views(self.aug_cfg, self.seed, self.labeled_view, unlabeled)
        gb, mu, probs = self.global_batch, self.uda_data, self.teacher_probs
        u_labels_known = unlabeled and self.source.unlabeled.labels is not None
        out_of_classes_known = u_labels_known and bool(np.any(
            np.asarray(self.source.unlabeled.labels) == OUT_OF_CLASSES))
        ordered = self.deterministic or not self.source.streamed

        def replica_of(i):
            return pipeline_id * local + tf.cast(i % local, tf.int32)

        def step_keys(i):
            return views.step_keys(tf.cast(start_step, tf.int64) + i // local)

        def element(i, keys, labeled, unlabeled_part=None):
            """The views and stored labels of element i's images; each
            part is (images, labels, keys) of this replica's batch."""
            start = replica_of(i) * per_replica
            l_images, l_labels, l_keys = labeled
            out = {"l_images": views.labeled(tf.cast(l_images, tf.float32),
                                             keys, (start, gb, per_replica)),
                   "l_labels": tf.cast(l_labels, tf.int32)}
            if probs is not None:
                out["l_teacher"] = probs["labeled"].lookup(l_keys)
            if not unlabeled:
                return out
            u_images, u_labels, u_keys = unlabeled_part
            out["u_weak"], out["u_strong"] = views.unlabeled(
                tf.cast(u_images, tf.float32), keys,
                (mu * start, mu * gb, mu * per_replica))
            if u_labels_known:
                out["u_labels"] = tf.cast(u_labels, tf.int32)
            if out_of_classes_known:
                out["u_out_of_classes"] = tf.cast(
                    tf.equal(out["u_labels"], OUT_OF_CLASSES), tf.float32)
            if probs is not None:
                out["u_teacher"] = probs["unlabeled"].lookup(u_keys)
            return out

        if self.source.streamed:
            ds = self._streamed(input_context, start_step, per_replica,
                                unlabeled).enumerate()
            ds = ds.map(lambda i, parts: element(i, step_keys(i), *parts),
                        num_parallel_calls=AUTOTUNE, deterministic=ordered)
        else:
            draw = self._drawer(unlabeled, per_replica)

            def drawn_element(i):
                keys = step_keys(i)
                return element(i, keys, *draw(replica_of(i), keys))

            ds = tf.data.Dataset.range(2**62).map(
                drawn_element, num_parallel_calls=AUTOTUNE, deterministic=True)
        options = tf.data.Options()
        options.deterministic = ordered
        return ds.with_options(options).prefetch(AUTOTUNE)

    def _drawer(self, unlabeled, per_replica):
        """In memory: draw(replica, keys) -> the replica's (images, labels,
        positions) of each split, its slice of the step's seeded draw."""
        splits = [self.source.labeled] + ([self.source.unlabeled]
                                          if unlabeled else [])
        constants = [(len(s), tf.constant(s.images),
                      tf.constant(s.labels if s.labels is not None
                                  else np.full([len(s)], -1), tf.int32))
                     for s in splits]
        gb, mu = self.global_batch, self.uda_data

        def draw(replica, keys):
            parts = []
            for (count, images, labels), total, size, key in zip(
                    constants, (gb, mu * gb), (per_replica, mu * per_replica),
                    Views.index_keys(keys)):
                start = replica * size
                idx = _draw_indices(count, total, key)[start:start + size]
                parts.append((tf.gather(images, idx), tf.gather(labels, idx),
                              idx))
            return parts

        return draw

    def _streamed(self, input_context, start_step, per_replica, unlabeled):
        """Streamed: (labeled batch[, unlabeled batch]) of this replica's
        size, each (images, labels, keys)."""
        pipeline_id, _, _ = pipeline_layout(input_context)

        def seed(which):
            return stream_seed(self.seed, start_step, pipeline_id, which)

        streams = [_stream(self.source.labeled, input_context, seed(0))
                   .batch(per_replica, drop_remainder=True)]
        if unlabeled:
            streams.append(
                _stream(self.source.unlabeled, input_context, seed(1))
                .batch(self.uda_data * per_replica, drop_remainder=True))
        return tf.data.Dataset.zip(tuple(streams))


def eval_dataset(images, labels=None, batch_size=256, input_context=None):
    """(images float32 0..255, labels int32) batches of a split, in order,
    each image once: for the CLI's evaluation and for `evaluate`.

    `images`: a `Split` or `StreamedSplit` (e.g. `source.test`), or an
    array with `labels`. With several input pipelines each reads its own
    shard. A streamed split is decoded with its eval crop (ImageNet: the
    centre 224/256).
    """
    if isinstance(images, (Split, StreamedSplit)):
        split = images
    else:
        split = Split(np.asarray(images),
                      np.asarray(labels).reshape(-1).astype(np.int32))
    pipeline_id, num_pipelines, replicas = pipeline_layout(input_context)
    per_replica = max(1, batch_size // replicas)
    if isinstance(split, StreamedSplit):
        ds = split.read(input_context, training=False)
    else:
        ds = tf.data.Dataset.from_tensor_slices((split.images, split.labels))
        if num_pipelines > 1:
            ds = ds.shard(num_pipelines, pipeline_id)
    ds = ds.batch(per_replica)
    ds = ds.map(lambda x, y: (tf.cast(x, tf.float32), tf.cast(y, tf.int32)),
                num_parallel_calls=AUTOTUNE)
    return ds.prefetch(AUTOTUNE)


# -- for keras.Model.fit ------------------------------------------------------

def _stored(teacher_probs, source):
    """{"labeled", "unlabeled": StoredLabels} from a pair of arrays
    [N, C] aligned with the source's splits, or as given (a dict from
    `teacher_labels.read`)."""
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
    if mode not in registry.MODES:
        raise ValueError(f"mode={mode!r}: expected one of {registry.MODES}")
    if mode != "supervised" and len(source.unlabeled) == 0:
        raise ValueError(f"mode={mode!r} needs unlabeled images")
    if batch_size < 1 or uda_data < 1:
        raise ValueError("batch_size and uda_data must be >= 1")
    if teacher_probs is not None and mode != "mpl":
        raise ValueError("teacher_probs are for Reduced MPL (mode='mpl')")
    train_input = TrainInput(
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
