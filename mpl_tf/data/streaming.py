"""Training input for sources whose images are streamed from files.

Used when the labeled or unlabeled split is a `StreamedSplit` (SVHN with
--svhn_use_extra, ImageNet): the images stay in the TFDS files and are never
graph constants. Each input pipeline (one per host under
`distribute_datasets_from_function`) reads its own share of the files,
shuffles files and records, repeats, decodes in parallel (ImageNet: the
inception crop happens while decoding), batches per replica and augments
whole batches like the in-memory pipeline. Elements have the same structure
as `pipeline.TrainInput`'s: `l_images`, `l_labels` and, for uda/mpl,
`u_weak`, `u_strong`, each holding one replica's batch.

Determinism and resume, what is and is not guaranteed:
- A stream is seeded by (--seed, start step, input pipeline id). With
  `deterministic=True` (tests) the same seed, start step and device layout
  give the same images in the same order; by default tf.data may reorder
  elements for speed, so two runs see the same distribution, not the same
  order. keras-cv's RandAugment draws from its own generator either way.
- Unlike the in-memory pipeline, step t's batch is NOT a function of
  (seed, t) alone: a run resumed at step s starts a fresh shuffle seeded
  by s. It does not replay the images of steps before s, but it does not
  see exactly what an uninterrupted run would have seen either.
- Flip/crop/cutout of a batch depend only on (seed, step, replica).
"""

import numpy as np
import tensorflow as tf

from mpl_tf.data import augment
from mpl_tf.data.pipeline import pipeline_layout
from mpl_tf.data.source import StreamedSplit

AUTOTUNE = tf.data.AUTOTUNE
_MAX_MEMORY_SHUFFLE = 50_000


def stream_seed(seed, start_step, pipeline_id, which):
    """A tf.data seed for one stream of one pipeline of one (re)start."""
    state = np.random.SeedSequence([seed, start_step, pipeline_id, which])
    return int(state.generate_state(1)[0])


def _stream(split, input_context, seed, keyed=False):
    """(image uint8, label int32[, key int64]) of `split`, shuffled and
    repeated; keys as `teacher_labels` keys them."""
    if isinstance(split, StreamedSplit):
        return split.read(input_context, training=True, seed=seed,
                          keyed=keyed)
    # A small in-memory split next to a streamed one (SVHN's labeled images).
    labels = (split.labels if split.labels is not None
              else np.full([len(split)], -1, np.int32))
    columns = (split.images, labels)
    if keyed:  # its position
        columns += (np.arange(len(split), dtype=np.int64),)
    ds = tf.data.Dataset.from_tensor_slices(columns)
    pipeline_id, num_pipelines, _ = pipeline_layout(input_context)
    if num_pipelines > 1:
        ds = ds.shard(num_pipelines, pipeline_id)
    return ds.shuffle(min(len(split), _MAX_MEMORY_SHUFFLE), seed=seed).repeat()


def train_dataset(train_input, input_context=None, start_step=0):
    """The per-replica training batches of a streamed source."""
    ti = train_input
    pipeline_id, num_pipelines, replicas = pipeline_layout(input_context)
    local = replicas // num_pipelines
    per_replica = ti.global_batch // replicas
    unlabeled = ti.mode != "supervised"
    needs_strong = unlabeled or ti.labeled_view == "strong"
    strong = (augment.StrongAugment(ti.aug_cfg, seed=ti.seed)
              if needs_strong else None)
    cfg, seed = ti.aug_cfg, ti.seed

    def seeds(which):
        return stream_seed(seed, start_step, pipeline_id, which)

    probs = ti.teacher_probs
    keyed = probs is not None
    streams = [_stream(ti.source.labeled, input_context, seeds(0), keyed)
               .batch(per_replica, drop_remainder=True)]
    if unlabeled:
        streams.append(_stream(ti.source.unlabeled, input_context, seeds(1),
                               keyed)
                       .batch(ti.uda_data * per_replica, drop_remainder=True))

    def element(i, batches):
        step = tf.cast(start_step, tf.int64) + i // local
        replica = pipeline_id * local + i % local
        keys = tf.random.split(
            tf.random.fold_in(tf.stack([tf.constant(seed, tf.int64), step]),
                              replica), 5)
        images, labels = batches[0][:2]
        images = tf.cast(images, tf.float32)
        if ti.labeled_view == "strong":
            images = strong(images, keys[0])
        else:
            images = augment.flip_and_crop(images, cfg, keys[0])
        out = {"l_images": images, "l_labels": labels}
        if keyed:
            out["l_teacher"] = probs["labeled"].lookup(batches[0][2])
        if unlabeled:
            u_batch = tf.cast(batches[1][0], tf.float32)
            out["u_weak"] = augment.flip_and_crop(u_batch, cfg, keys[1])
            out["u_strong"] = strong(u_batch, keys[2])
            if ti.source.unlabeled.labels is not None:
                out["u_labels"] = tf.cast(batches[1][1], tf.int32)
            if keyed:
                out["u_teacher"] = probs["unlabeled"].lookup(batches[1][2])
        return out

    ds = tf.data.Dataset.zip(tuple(streams)).enumerate()
    ds = ds.map(element, num_parallel_calls=AUTOTUNE,
                deterministic=ti.deterministic)
    options = tf.data.Options()
    options.deterministic = ti.deterministic
    return ds.with_options(options).prefetch(AUTOTUNE)
