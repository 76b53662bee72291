"""A large teacher's class distributions, stored once for Reduced MPL.

`--task_mode=label` writes <teacher output_dir>/teacher_labels/: labels.npz
(per training-pool image of the run's labeled and unlabeled splits, in
split order: float16 distributions, or with --teacher_labels_top_k=k the k
largest probabilities and their classes) and labels.json (what produced
them: dataset, seed, split checksums, teacher checkpoint). A Reduced MPL
run (`--teacher_labels=DIR`) reads them and refuses a file made for other
images.
"""

import hashlib
import json
import os

import numpy as np

from mpl_tf.errors import ConfigError

SUBDIR = "teacher_labels"
ARRAYS = "labels.npz"
META = "labels.json"
SPLITS = ("labeled", "unlabeled")
# The fields a student's run must share with the file, in message order.
IDENTITY = ("data", "num_labeled", "seed", "num_classes", "labeled_indices",
            "unlabeled_indices")


def _checksum(indices):
    text = json.dumps([int(i) for i in indices])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def identity(params, source):
    """What makes two runs' training images the same images."""
    indices = source.split_indices
    return {"data": source.name,
            "num_labeled": len(source.labeled),
            "seed": params.seed,
            "num_classes": source.num_classes,
            "labeled_indices": _checksum(indices.get("labeled", [])),
            "unlabeled_indices": _checksum(indices.get("unlabeled", []))}


def sparsify(probs, top_k):
    """(probabilities float16 [N, k], classes int32 [N, k]) of the k largest."""
    classes = np.argsort(-probs, axis=-1)[:, :top_k].astype(np.int32)
    return (np.take_along_axis(probs, classes, -1).astype(np.float16),
            classes)


def densify(top_probs, classes, num_classes):
    """Full distributions from top-k: the mass left over is spread evenly
    over the other classes."""
    top = top_probs.astype(np.float32)
    rest = np.clip(1.0 - top.sum(-1, keepdims=True), 0.0, 1.0)
    others = max(num_classes - top.shape[-1], 1)
    dense = np.repeat(rest / others, num_classes, axis=-1).astype(np.float32)
    np.put_along_axis(dense, classes.astype(np.int64), top, -1)
    return dense


def write(directory, distributions, meta, top_k=0):
    """Store {split: float32 [N, C]} and `meta` atomically in `directory`."""
    os.makedirs(directory, exist_ok=True)
    arrays = {}
    for split in SPLITS:
        probs = distributions[split]
        if top_k:
            arrays[f"{split}_probs"], arrays[f"{split}_classes"] = sparsify(
                probs, top_k)
        else:
            arrays[split] = probs.astype(np.float16)
    tmp = os.path.join(directory, "labels.tmp.npz")
    np.savez(tmp, **arrays)
    meta = dict(meta, top_k=top_k,
                counts={s: int(len(distributions[s])) for s in SPLITS})
    meta_tmp = os.path.join(directory, META + ".tmp")
    with open(meta_tmp, "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=2, sort_keys=True)
    os.replace(tmp, os.path.join(directory, ARRAYS))
    os.replace(meta_tmp, os.path.join(directory, META))
    return directory


def _directory(path):
    """--teacher_labels may name the directory, its labels.npz, or the
    teacher's output_dir (which holds teacher_labels/)."""
    if os.path.isfile(path):
        return os.path.dirname(path)
    if os.path.isdir(os.path.join(path, SUBDIR)):
        return os.path.join(path, SUBDIR)
    return path


def read_meta(path):
    directory = _directory(path)
    meta_path = os.path.join(directory, META)
    if not os.path.exists(meta_path) or not os.path.exists(
            os.path.join(directory, ARRAYS)):
        raise ConfigError(
            f"--teacher_labels={path}: no {ARRAYS} and {META} there; write "
            "them with the large teacher's flags and --task_mode=label")
    with open(meta_path, encoding="utf-8") as f:
        return json.load(f)


def load(path, expected):
    """{split: float32 [N, C]} for a run whose `identity` is `expected`;
    ConfigError (saying what differs) for a file made for other images."""
    meta = read_meta(path)
    diff = [f"{key} {meta.get(key)!r} (this run: {expected[key]!r})"
            for key in IDENTITY if meta.get(key) != expected[key]]
    if diff:
        raise ConfigError(
            f"--teacher_labels={path} was made for other training images: "
            f"{'; '.join(diff)}. Label this run's data: run the teacher with "
            f"--dataset_name and --seed of this run and --task_mode=label")
    arrays = np.load(os.path.join(_directory(path), ARRAYS))
    out = {}
    for split in SPLITS:
        if meta["top_k"]:
            out[split] = densify(arrays[f"{split}_probs"],
                                 arrays[f"{split}_classes"],
                                 meta["num_classes"])
        else:
            out[split] = arrays[split].astype(np.float32)
    return out
