"""A large teacher's class distributions, stored once for Reduced MPL.

`--task_mode=label` writes <teacher output_dir>/teacher_labels/:
- `<split>-<i>.npz` shards of at most SHARD_IMAGES images each, per split
  of the run's training pool (labeled, unlabeled): each image's key and its
  distribution as float16 (or, with --teacher_labels_top_k=k, the k largest
  probabilities and their classes);
- labels.json: what produced them (dataset, seed, split checksums and sizes,
  how images are keyed, teacher checkpoint) and the shard list. It is written
  last, so a directory without it is not a label set.

An image's key says which image it is without relying on read order: its
position in an in-memory split, or for a split streamed from TFDS files
(`tfds_files.reader`) its index in the TFDS splits it reads. A Reduced MPL
run (`--teacher_labels=DIR`) looks its batches' images up by key
(`StoredLabels.lookup`) and refuses a file made for other images.
"""

import hashlib
import json
import os
import shutil

import numpy as np
import tensorflow as tf

from mpl_tf.data.source import StreamedSplit
from mpl_tf.errors import ConfigError

SUBDIR = "teacher_labels"
META = "labels.json"
SPLITS = ("labeled", "unlabeled")
# Images per shard file: 50k ImageNet images at top-10 are ~3 MB; at full
# 1,000-class float16 ~100 MB.
SHARD_IMAGES = 50_000
# The fields a student's run must share with the file, in message order.
IDENTITY = ("data", "num_labeled", "seed", "num_classes", "labeled_indices",
            "unlabeled_indices", "counts", "keys")


def _checksum(indices):
    text = json.dumps([int(i) for i in indices])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def key_kind(split):
    """How a split's images are keyed: by position in memory, or by their
    index in the TFDS files they stream from."""
    return "stream" if isinstance(split, StreamedSplit) else "position"


def identity(params, source):
    """What makes two runs' training images the same images."""
    indices = source.split_indices
    return {"data": source.name,
            "num_labeled": len(source.labeled),
            "seed": params.seed,
            "num_classes": source.num_classes,
            "labeled_indices": _checksum(indices.get("labeled", [])),
            "unlabeled_indices": _checksum(indices.get("unlabeled", [])),
            "counts": {s: len(getattr(source, s)) for s in SPLITS},
            "keys": {s: key_kind(getattr(source, s)) for s in SPLITS}}


def sparsify(probs, top_k):
    """(probabilities float16 [N, k], classes int32 [N, k]) of the k largest."""
    classes = np.argsort(-probs, axis=-1)[:, :top_k].astype(np.int32)
    return (np.take_along_axis(probs, classes, -1).astype(np.float16),
            classes)


def densify(top_probs, classes, num_classes):
    """Full float32 distributions from top-k: the mass left over is spread
    evenly over the other classes. Tensors (or arrays) [N, k] -> [N, C]."""
    top = tf.cast(top_probs, tf.float32)
    rest = tf.clip_by_value(1.0 - tf.reduce_sum(top, -1, keepdims=True),
                            0.0, 1.0)
    others = max(num_classes - int(top.shape[-1]), 1)
    hot = tf.one_hot(tf.cast(classes, tf.int32), num_classes)   # [N, k, C]
    placed = tf.reduce_sum(hot * top[..., None], axis=1)
    covered = tf.reduce_sum(hot, axis=1)
    return placed + (1.0 - covered) * (rest / others)


class Writer:
    """Writes a label set into a scratch directory; `commit` swaps it in.

    Shards are written as they fill, so a split of any size needs memory
    for one shard only. Until `commit` the previous label set (if any)
    stays where it was.
    """

    def __init__(self, directory, top_k=0):
        self.directory = directory
        self.scratch = directory.rstrip("/") + ".writing"
        self.top_k = top_k
        shutil.rmtree(self.scratch, ignore_errors=True)
        os.makedirs(self.scratch)
        self.shards = {s: [] for s in SPLITS}
        self.counts = {s: 0 for s in SPLITS}
        self._pending = {s: [] for s in SPLITS}

    def add(self, split, keys, probs):
        """One batch: keys int [b], probabilities float [b, C]."""
        self._pending[split].append((np.asarray(keys, np.int64),
                                     np.asarray(probs, np.float32)))
        self.counts[split] += len(keys)
        if sum(len(k) for k, _ in self._pending[split]) >= SHARD_IMAGES:
            self._flush(split)

    def _flush(self, split):
        if not self._pending[split]:
            return
        keys = np.concatenate([k for k, _ in self._pending[split]])
        probs = np.concatenate([p for _, p in self._pending[split]])
        self._pending[split] = []
        arrays = {"keys": keys}
        if self.top_k:
            arrays["top_probs"], arrays["classes"] = sparsify(probs,
                                                              self.top_k)
        else:
            arrays["probs"] = probs.astype(np.float16)
        name = f"{split}-{len(self.shards[split]):05d}.npz"
        np.savez(os.path.join(self.scratch, name), **arrays)
        self.shards[split].append(name)

    def commit(self, meta):
        """Write labels.json and replace `directory` with the new set."""
        for split in SPLITS:
            self._flush(split)
        meta = dict(meta, top_k=self.top_k, counts=dict(self.counts),
                    shards=self.shards)
        with open(os.path.join(self.scratch, META), "w",
                  encoding="utf-8") as f:
            json.dump(meta, f, indent=2, sort_keys=True)
        old = self.directory.rstrip("/") + ".old"
        shutil.rmtree(old, ignore_errors=True)
        if os.path.exists(self.directory):
            os.replace(self.directory, old)
        os.replace(self.scratch, self.directory)
        shutil.rmtree(old, ignore_errors=True)
        return self.directory


def write(directory, distributions, meta, top_k=0):
    """Store {split: float [N, C]} of in-memory splits (keys = positions)."""
    writer = Writer(directory, top_k)
    for split in SPLITS:
        probs = np.asarray(distributions[split])
        writer.add(split, np.arange(len(probs)), probs)
    return writer.commit(meta)


def _directory(path):
    """--teacher_labels may name the directory, its labels.json, or the
    teacher's output_dir (which holds teacher_labels/)."""
    if os.path.isfile(path):
        return os.path.dirname(path)
    if os.path.isdir(os.path.join(path, SUBDIR)):
        return os.path.join(path, SUBDIR)
    return path


def read_meta(path):
    directory = _directory(path)
    meta_path = os.path.join(directory, META)
    missing = not os.path.exists(meta_path)
    if not missing:
        with open(meta_path, encoding="utf-8") as f:
            meta = json.load(f)
        missing = [n for s in SPLITS for n in meta.get("shards", {}).get(s, [])
                   if not os.path.exists(os.path.join(directory, n))]
    if missing:
        what = (f"no {META} there" if missing is True
                else f"shard files missing: {', '.join(missing[:3])}")
        raise ConfigError(
            f"--teacher_labels={path}: {what}; write them with the large "
            "teacher's flags and --task_mode=label")
    return meta


class StoredLabels:
    """One split's stored distributions, looked up by image key in tf."""

    def __init__(self, keys, num_classes, probs=None, top_probs=None,
                 classes=None):
        self.num_classes = num_classes
        self.size = len(keys)
        # key -> row of the value arrays; -1 (an error at lookup) for keys
        # not stored.
        rows = np.full([int(keys.max()) + 1 if len(keys) else 0], -1,
                       np.int64)
        rows[keys] = np.arange(len(keys))
        self._rows = tf.constant(rows)
        if probs is not None:
            self._values = (tf.constant(probs, tf.float16),)
        else:
            self._values = (tf.constant(top_probs, tf.float16),
                            tf.constant(classes, tf.int32))

    def lookup(self, keys):
        """float32 [b, C] distributions of the images with these keys."""
        rows = tf.gather(self._rows, tf.cast(keys, tf.int64))
        values = [tf.gather(v, rows) for v in self._values]
        if len(values) == 1:
            return tf.cast(values[0], tf.float32)
        return densify(*values, self.num_classes)

    def dense(self, keys=None):
        """numpy float32 [N, C] of `keys` (default: 0..size-1)."""
        if keys is None:
            keys = np.arange(self.size)
        return self.lookup(tf.constant(keys)).numpy()


def read(path, expected):
    """{split: StoredLabels} for a run whose `identity` is `expected`;
    ConfigError (saying what differs) for a file made for other images."""
    meta = read_meta(path)
    diff = [f"{key} {meta.get(key)!r} (this run: {expected[key]!r})"
            for key in IDENTITY if meta.get(key) != expected[key]]
    if diff:
        raise ConfigError(
            f"--teacher_labels={path} was made for other training images: "
            f"{'; '.join(diff)}. Label this run's data: run the teacher with "
            f"--dataset_name and --seed of this run and --task_mode=label")
    directory = _directory(path)
    out = {}
    for split in SPLITS:
        shards = [np.load(os.path.join(directory, n))
                  for n in meta["shards"][split]]
        parts = {name: np.concatenate([s[name] for s in shards])
                 for name in shards[0].files} if shards else {
                     "keys": np.zeros([0], np.int64),
                     "probs": np.zeros([0, meta["num_classes"]], np.float16)}
        if len(np.unique(parts["keys"])) != len(parts["keys"]):
            raise ConfigError(f"--teacher_labels={path}: the {split} shards "
                              "hold an image twice; label the data again")
        out[split] = StoredLabels(num_classes=meta["num_classes"], **parts)
    return out
