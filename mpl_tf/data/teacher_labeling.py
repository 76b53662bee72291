"""`--task_mode=label`: a trained (large) teacher's class distributions for
every image of the labeled and unlabeled splits, stored for Reduced MPL.

The images are the un-augmented training images (what the evaluation sees:
a streamed split's eval crop); the deployed network (its EMA, if it has one)
labels them in inference mode, in --eval_batch_size batches on one device.
Streamed splits are read once, file by file, and written in shards as they
go (`teacher_labels.Writer`), so memory holds one shard.
"""

import time

import keras
import numpy as np
import tensorflow as tf

from mpl_tf.data import teacher_labels
from mpl_tf.data.source import StreamedSplit
from mpl_tf.errors import ConfigError

# A progress bar from this many images on.
PROGRESS_FROM = 2000


class Labeler:
    """softmax(network(images)) batch by batch; traced once per network."""

    def __init__(self, network):
        @tf.function(reduce_retracing=True)
        def predict(batch):
            logits = network(tf.cast(batch, tf.float32), training=False)
            return tf.nn.softmax(tf.cast(logits, tf.float32), axis=-1)
        self._predict = predict

    def label_split(self, split, batch_size, write, title=None):
        """write(keys, probs) for every image of a split, in batches: an
        in-memory one keyed by position, a streamed one as it reads its
        files (eval crop). A progress bar for large splits."""
        if isinstance(split, StreamedSplit):
            batches = (split.read(training=False, keyed=True)
                       .batch(batch_size).prefetch(tf.data.AUTOTUNE)
                       .as_numpy_iterator())
            batches = ((images, keys) for images, _, keys in batches)
        else:
            batches = ((split.images[i:i + batch_size],
                        np.arange(i, min(i + batch_size, len(split))))
                       for i in range(0, len(split), batch_size))
        bar = (keras.utils.Progbar(len(split), unit_name="image")
               if title and len(split) >= PROGRESS_FROM else None)
        if bar:
            print(title, flush=True)
        done = 0
        for images, keys in batches:
            write(keys, self._predict(images).numpy())
            done += len(keys)
            if bar:
                bar.update(done)
        if done != len(split):
            raise ConfigError(
                f"--task_mode=label: read {done} images of the {title or ''} "
                f"split, expected {len(split)}; the data files are "
                "incomplete, prepare them again")
        return done


def label(params, source, network, checkpoint, step):
    """Write <output_dir>/teacher_labels; returns (directory, images/s)."""
    labeler = Labeler(network)
    writer = teacher_labels.Writer(
        f"{params.output_dir}/{teacher_labels.SUBDIR}",
        top_k=params.teacher_labels_top_k)
    start = time.perf_counter()
    count = 0
    for name in teacher_labels.SPLITS:
        split = getattr(source, name)
        count += labeler.label_split(
            split, params.eval_batch_size,
            lambda keys, probs, name=name: writer.add(name, keys, probs),
            title=f"labeling {len(split)} {name} images")
    seconds = time.perf_counter() - start
    meta = dict(teacher_labels.identity(params, source),
                teacher={"output_dir": params.output_dir,
                         "checkpoint": checkpoint, "step": int(step),
                         "model_type": params.model_type,
                         "dataset_name": params.dataset_name})
    return writer.commit(meta), count / max(seconds, 1e-9)
