"""Reading prepared TFDS files: each record with its canonical index, as a
stream of encoded images (`reader`, for a `StreamedSplit`) or into arrays
(`read_arrays`, for an in-memory `Split`).

An image's index is its position in TFDS's canonical order of the split
(shard file by shard file, record by record), computed from the example's
`tfds_id`, so a subset of a split (the labeled images, the validation
images, ...) is a boolean mask over indices, the same on every machine
with the same prepared version. Indices are never taken from read order,
which shuffling and per-host sharding change.
"""

import numpy as np
import tensorflow as tf

from mpl_tf.data.source import pipeline_layout
from mpl_tf.errors import ConfigError

AUTOTUNE = tf.data.AUTOTUNE
# Encoded images shuffled before decoding (ImageNet JPEGs: ~110 kB each, so
# ~1 GB per input pipeline). Files are shuffled too, so this only has to mix
# neighbouring records.
SHUFFLE_BUFFER = 10_000


def shard_offsets(builder, split):
    """Index of the first example of each shard file of `split`."""
    lengths = list(builder.info.splits[split].shard_lengths)
    return np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)


def global_index(tfds_id, offsets):
    """'name-train.tfrecord-00003-of-01024__17' -> offsets[3] + 17."""
    record = tf.strings.regex_replace(tfds_id, r"^.*__", "")
    shard = tf.strings.regex_replace(tfds_id, r"^.*-(\d+)-of-\d+__\d+$", r"\1")
    return (tf.gather(offsets, tf.strings.to_number(shard, tf.int64))
            + tf.strings.to_number(record, tf.int64))


def read_part(builder, split, keep, input_context=None, training=False,
              seed=0, decoders=None):
    """Examples of `split` (those with keep[index], if `keep` is given).

    Each input pipeline reads its own files when there are enough of them,
    else every k-th example. Yields dicts with 'image' (encoded bytes unless
    `decoders` says otherwise), 'label' int32 (-1 if the split has none)
    and 'index' int64.
    """
    import tensorflow_datasets as tfds

    pipeline_id, num_pipelines, _ = pipeline_layout(input_context)
    offsets = shard_offsets(builder, split)
    by_file = num_pipelines > 1 and len(offsets) >= num_pipelines
    read_config = tfds.ReadConfig(
        add_tfds_id=True, shuffle_seed=seed, try_autocache=False,
        input_context=input_context if by_file else None)
    if decoders is None:
        decoders = {"image": tfds.decode.SkipDecoding()}
    ds = builder.as_dataset(split=split, shuffle_files=training,
                            decoders=decoders, read_config=read_config)
    if num_pipelines > 1 and not by_file:
        ds = ds.shard(num_pipelines, pipeline_id)
    offsets_t = tf.constant(offsets)

    def tidy(ex):
        label = ex["label"] if "label" in ex else tf.constant(-1)
        out = {"label": tf.cast(label, tf.int32),
               "index": global_index(ex["tfds_id"], offsets_t)}
        if "image" in ex:
            out["image"] = ex["image"]
        return out

    ds = ds.map(tidy, num_parallel_calls=AUTOTUNE)
    if keep is not None:
        keep_t = tf.constant(np.asarray(keep, bool))
        ds = ds.filter(lambda ex: tf.gather(keep_t, ex["index"]))
    return ds


def read_labels(builder, split):
    """All labels of `split` in index order, without decoding images.

    One pass over the split's files (for ImageNet ~140 GB of reading, at
    every start: the price of choosing a class-balanced subset by seed).
    """
    size = builder.info.splits[split].num_examples
    labels = np.full([size], -1, np.int32)
    ds = read_part(builder, split, None)
    # Drop the encoded bytes before batching: 65,536 ImageNet JPEGs are 7 GB.
    ds = ds.map(lambda ex: {"label": ex["label"], "index": ex["index"]},
                num_parallel_calls=AUTOTUNE).batch(65536)
    for batch in ds.as_numpy_iterator():
        labels[batch["index"]] = batch["label"]
    return labels


def read_arrays(builder, split):
    """(images uint8 [N, H, W, C], labels int32 [N]) of `split`, index order."""
    size = builder.info.splits[split].num_examples
    shape = builder.info.features["image"].shape
    images = np.zeros([size, *shape], np.uint8)
    labels = np.full([size], -1, np.int32)
    ds = read_part(builder, split, None, decoders={}).batch(4096)
    seen = 0
    for batch in ds.as_numpy_iterator():
        images[batch["index"]] = batch["image"]
        labels[batch["index"]] = batch["label"]
        seen += len(batch["index"])
    if seen != size:
        raise ConfigError(
            f"--data_dir: {builder.data_dir} holds {seen} examples of "
            f"{builder.name}/{split} but its metadata says {size}; the "
            "prepared data is incomplete, prepare it again")
    return images, labels


def reader(builder, parts, train_decode, eval_decode):
    """A `StreamedSplit.read` over `parts` = [(split, keep mask or None)].

    train_decode(encoded, seed) and eval_decode(encoded) turn encoded bytes
    into uint8 [S, S, 3]. Training streams are shuffled (files, then up to
    SHUFFLE_BUFFER encoded records) and repeated; several parts are mixed in
    proportion to their sizes. With keyed=True each element also carries
    the image's key: its index in its TFDS split, plus the sizes of the
    splits listed before it (SVHN's extra images follow its train images).
    """
    sizes = [int(np.sum(keep)) if keep is not None
             else builder.info.splits[split].num_examples
             for split, keep in parts]
    bases, first = {}, 0
    for split, _ in parts:
        if split not in bases:
            bases[split] = first
            first += builder.info.splits[split].num_examples

    def read(input_context=None, training=False, seed=0, keyed=False):
        streams = []
        for split, keep in parts:
            part = read_part(builder, split, keep, input_context, training,
                             seed)
            if bases[split]:
                part = part.map(
                    lambda ex, base=bases[split]: dict(
                        ex, index=ex["index"] + base))
            streams.append(part)

        def element(ex, image):
            return ((image, ex["label"], ex["index"]) if keyed
                    else (image, ex["label"]))

        if not training:
            ds = streams[0]
            for more in streams[1:]:
                ds = ds.concatenate(more)
            return ds.map(lambda ex: element(ex, eval_decode(ex["image"])),
                          num_parallel_calls=AUTOTUNE)
        streams = [s.repeat() for s in streams]
        ds = streams[0] if len(streams) == 1 else \
            tf.data.Dataset.sample_from_datasets(
                streams, weights=[n / sum(sizes) for n in sizes], seed=seed)
        # No bigger than the data: a 10k buffer over a small labeled subset
        # would just hold repeats and delay the first batch.
        ds = ds.shuffle(min(SHUFFLE_BUFFER, max(sum(sizes), 1)), seed=seed)
        # One stateless seed pair per image for its random crop.
        seeds = tf.data.Dataset.random(seed=seed).batch(2)
        return tf.data.Dataset.zip((ds, seeds)).map(
            lambda ex, s: element(ex, train_decode(ex["image"], s)),
            num_parallel_calls=AUTOTUNE)

    return read, sum(sizes)
