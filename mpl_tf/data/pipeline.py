"""tf.data input for training and evaluation, for any tf.distribute strategy.

Training batches are a function of (seed, step): step t's global batch is a
seeded draw without replacement from each split, and each replica takes its
slice of it. So a resumed run sees the data it would have seen, and one
device and N replicas see the same global batch (RandAugment's own choice of
ops aside).

Element i of an input pipeline's dataset feeds replica i mod (local
replicas) at step start_step + i div (local replicas): that is the order in
which `distribute_datasets_from_function` hands elements to replicas. Each
element is one replica's batch: global batch / replicas in sync.

Sources too big for memory (a `StreamedSplit`) go through `streaming.py`
instead, which yields the same elements with a weaker order guarantee.
"""

import tensorflow as tf

from mpl_tf.data import augment
from mpl_tf.data.source import StreamedSplit

AUTOTUNE = tf.data.AUTOTUNE


def pipeline_layout(input_context):
    """(pipeline id, number of pipelines, replicas in sync)."""
    if input_context is None:
        return 0, 1, 1
    return (input_context.input_pipeline_id,
            input_context.num_input_pipelines,
            input_context.num_replicas_in_sync)


def _draw_indices(num_items, total, seed):
    """`total` indices into range(num_items): a seeded permutation, tiled."""
    repeats = -(-total // num_items)  # ceil
    perms = [tf.random.experimental.stateless_shuffle(
        tf.range(num_items), seed=tf.random.fold_in(seed, r))
             for r in range(repeats)]
    return tf.concat(perms, axis=0)[:total]


class TrainInput:
    """Builds the training dataset of one mode.

    Elements are dicts: `l_images` [b,H,W,C] float32 0..255, `l_labels` [b]
    int32; for uda/mpl also `u_weak` and `u_strong` [mu*b,H,W,C], and
    `u_labels` [mu*b] (-1 where unknown) when the unlabeled split's true
    labels are known (for diagnostics only), where b is the per-replica
    batch. `deterministic` fixes the element order of
    streamed sources (for tests; slower); in-memory ones are always ordered.
    `teacher_probs` (Reduced MPL): {"labeled": StoredLabels, "unlabeled":
    StoredLabels} (`teacher_labels.load`), looked up per image as
    `l_teacher` and `u_teacher` [b, C] float32.
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
        if self.source.streamed:
            from mpl_tf.data import streaming  # pylint: disable=import-outside-toplevel
            return streaming.train_dataset(self, input_context, start_step)
        pipeline_id, num_pipelines, replicas = pipeline_layout(input_context)
        local = replicas // num_pipelines
        per_replica = self.global_batch // replicas
        needs_strong = self.mode != "supervised" or self.labeled_view == "strong"
        strong = (augment.StrongAugment(self.aug_cfg, seed=self.seed)
                  if needs_strong else None)
        l_images = tf.constant(self.source.labeled.images)
        l_labels = tf.constant(self.source.labeled.labels, tf.int32)
        u_images = (tf.constant(self.source.unlabeled.images)
                    if self.mode != "supervised" else None)
        u_labels = (tf.constant(self.source.unlabeled.labels, tf.int32)
                    if u_images is not None
                    and self.source.unlabeled.labels is not None else None)
        cfg, gb, mu, seed = self.aug_cfg, self.global_batch, self.uda_data, self.seed
        num_labeled = len(self.source.labeled)
        num_unlabeled = len(self.source.unlabeled)
        probs = self.teacher_probs

        def element(i):
            step = tf.cast(start_step, tf.int64) + i // local
            replica = pipeline_id * local + tf.cast(i % local, tf.int32)
            keys = tf.random.split(
                tf.stack([tf.constant(seed, tf.int64), step]), 6)
            start = replica * per_replica
            idx = _draw_indices(num_labeled, gb, keys[0])
            idx = idx[start:start + per_replica]
            images = tf.cast(tf.gather(l_images, idx), tf.float32)
            span = (start, gb, per_replica)
            if self.labeled_view == "strong":
                images = strong(images, keys[1], span)
            else:
                images = augment.flip_and_crop(images, cfg, keys[1], span)
            out = {"l_images": images, "l_labels": tf.gather(l_labels, idx)}
            if probs is not None:
                out["l_teacher"] = probs["labeled"].lookup(idx)
            if u_images is None:
                return out
            u_start, u_size = mu * start, mu * per_replica
            u_idx = _draw_indices(num_unlabeled, mu * gb, keys[2])
            u_idx = u_idx[u_start:u_start + u_size]
            u_batch = tf.cast(tf.gather(u_images, u_idx), tf.float32)
            if u_labels is not None:
                out["u_labels"] = tf.gather(u_labels, u_idx)
            if probs is not None:
                out["u_teacher"] = probs["unlabeled"].lookup(u_idx)
            u_span = (u_start, mu * gb, u_size)
            out["u_weak"] = augment.flip_and_crop(u_batch, cfg, keys[3], u_span)
            out["u_strong"] = strong(u_batch, keys[4], u_span)
            return out

        ds = tf.data.Dataset.range(2**62)
        ds = ds.map(element, num_parallel_calls=AUTOTUNE, deterministic=True)
        return ds.prefetch(AUTOTUNE)


def eval_dataset(split, batch_size, input_context=None):
    """(images float32 0..255, labels) batches of a split, in order.

    With several input pipelines each reads its own shard. A streamed split
    is decoded with its eval crop (ImageNet: the centre 224/256).
    """
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
