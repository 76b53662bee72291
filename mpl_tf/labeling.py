"""`--task_mode=label`: a trained (large) teacher's class distributions for
every image of the labeled and unlabeled splits, stored for Reduced MPL.

The images are the un-augmented training images (what the evaluation sees);
the deployed network (its EMA, if it has one) labels them in inference mode,
in --eval_batch_size batches on one device.
"""

import time

import keras
import numpy as np
import tensorflow as tf

from mpl_tf.data import teacher_labels
from mpl_tf.errors import ConfigError

# A progress bar from this many images on.
PROGRESS_FROM = 2000


class Labeler:
    """softmax(network(images)) of whole arrays; traced once per network."""

    def __init__(self, network):
        @tf.function(reduce_retracing=True)
        def predict(batch):
            logits = network(tf.cast(batch, tf.float32), training=False)
            return tf.nn.softmax(tf.cast(logits, tf.float32), axis=-1)
        self._predict = predict

    def __call__(self, images, batch_size, title=None):
        """float32 [N, C], in order; a progress bar for large arrays."""
        bar = (keras.utils.Progbar(len(images), unit_name="image")
               if title and len(images) >= PROGRESS_FROM else None)
        if bar:
            print(title, flush=True)
        parts = []
        for start in range(0, len(images), batch_size):
            parts.append(self._predict(images[start:start + batch_size]).numpy())
            if bar:
                bar.update(min(start + batch_size, len(images)))
        return np.concatenate(parts, axis=0)


def label(params, source, network, checkpoint, step):
    """Write <output_dir>/teacher_labels; returns (directory, images/s)."""
    if source.streamed:
        raise ConfigError(
            f"--task_mode=label: --dataset_name={params.dataset_name} is "
            "streamed from files; labeling works on in-memory sources only "
            "for now")
    splits = {s: getattr(source, s) for s in teacher_labels.SPLITS}
    labeler = Labeler(network)
    start = time.perf_counter()
    probs = {name: labeler(split.images, params.eval_batch_size,
                           title=f"labeling {len(split)} {name} images")
             for name, split in splits.items()}
    seconds = time.perf_counter() - start
    count = sum(len(p) for p in probs.values())
    meta = dict(teacher_labels.identity(params, source),
                teacher={"output_dir": params.output_dir,
                         "checkpoint": checkpoint, "step": int(step),
                         "model_type": params.model_type,
                         "dataset_name": params.dataset_name})
    directory = teacher_labels.write(
        f"{params.output_dir}/{teacher_labels.SUBDIR}", probs, meta,
        top_k=params.teacher_labels_top_k)
    return directory, count / max(seconds, 1e-9)
