"""Any source, in memory or streamed, into the train step's batches (and
eval batches), for any tf.distribute strategy.

Element i of an input pipeline's dataset feeds replica i mod (local
replicas) at step start_step + i div (local replicas): the order in which
`distribute_datasets_from_function` hands elements to replicas. Each
element is one replica's batch (global batch / replicas in sync), a dict:
`l_images` [b,H,W,C] float32 0..255, `l_labels` [b] int32; for uda/mpl
also `u_weak`, `u_strong` [mu*b,H,W,C] and, when the unlabeled images'
true classes are known (diagnostics only), `u_labels` [mu*b] (-1 where
unknown); with stored teacher labels (Reduced MPL) `l_teacher` and
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
Either way the views (views.py) depend only on (seed, step, replica).
"""

import numpy as np
import tensorflow as tf

from mpl_tf.data.source import StreamedSplit, pipeline_layout
from mpl_tf.data.views import Views

AUTOTUNE = tf.data.AUTOTUNE
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
    (`teacher_labels.load`).
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
