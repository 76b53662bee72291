"""Your own images: `--dataset_name=image_folder[_<N>][_uda|_mpl]`.

--train_dir   one subfolder per class (its name is the class; classes are
              numbered in sorted order); images at any depth below it.
--unlabeled_dir  images at any depth (uda/mpl modes only). Never trained
              on with labels; images in a subfolder named like a class are
              used to log the pseudo labels' accuracy, images in `_other/`
              (known to be of none of the classes) to log how many such
              images the teacher is confident about (a diagnosis).
--eval_dir    the test split, subfolders named like --train_dir's classes.

Files with another extension are ignored. Every image is decoded (JPEG,
PNG, BMP, GIF: first frame) to RGB and resized (bilinear, antialiased) to
--image_size x --image_size, without keeping the aspect ratio. A file that
cannot be decoded stops the run with the list of such files, unless
--skip_bad_images, which skips them and logs how many.

Files are listed in sorted order of their path below the folder, so
`split_indices` (positions in `train_files`) pick the same images on any
machine. Everything is held in memory and used by the in-memory pipeline.
"""

import os

from absl import logging
import keras
import numpy as np
import tensorflow as tf

from mpl_tf import console
from mpl_tf.data import splits
from mpl_tf.data.source import OUT_OF_CLASSES, Source, Split, channel_stats
from mpl_tf.errors import ConfigError

EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
# The in-memory pipeline makes graph constants of the training images;
# TensorFlow refuses graphs over 2 GB.
MAX_TRAIN_BYTES = 1_500_000_000
_MAX_LISTED = 20


def _check_dir(path, flag):
    if not path:
        raise ConfigError(f"--{flag} is required with image_folder datasets; "
                          "give a directory of images")
    if not os.path.isdir(path):
        raise ConfigError(f"--{flag}={path} is not a directory; give a "
                          "directory of images")


def image_files(root):
    """Paths of the image files below `root`, sorted by relative path."""
    found = []
    for folder, _, files in os.walk(root, followlinks=True):
        found += [os.path.relpath(os.path.join(folder, f), root)
                  for f in files if f.lower().endswith(EXTENSIONS)]
    return sorted(found)


def class_files(root, flag, classes=None):
    """([relative paths], labels) of a folder with one subfolder per class.

    `classes` (from --train_dir) fixes the numbering; without it the
    subfolders define the classes.
    """
    _check_dir(root, flag)
    names = sorted(d for d in os.listdir(root)
                   if os.path.isdir(os.path.join(root, d)))
    if not names:
        raise ConfigError(f"--{flag}={root} has no class subfolders; put "
                          "each class's images in a subfolder named after it")
    if classes is not None:
        unknown = sorted(set(names) - set(classes))
        if unknown:
            raise ConfigError(
                f"--{flag}={root} has classes that --train_dir lacks: "
                f"{', '.join(unknown)}; rename or remove those subfolders")
    number = {c: i for i, c in enumerate(classes or names)}
    paths, labels = [], []
    for name in names:
        files = image_files(os.path.join(root, name))
        paths += [os.path.join(name, f) for f in files]
        labels += [number[name]] * len(files)
    if not paths:
        raise ConfigError(f"--{flag}={root} holds no images "
                          f"({', '.join(EXTENSIONS)})")
    return paths, np.asarray(labels, np.int32), names


# Folders with more files than this show a progress bar while decoding.
_PROGRESS_FROM = 2000


def decode(root, paths, size, what=None):
    """uint8 [n, size, size, 3] of the files that decode, and the bad paths.

    Decoding runs in parallel in tf.data; a file whose decoding fails is
    dropped by `ignore_errors`, and we find which by what is missing.
    `what` (e.g. "--train_dir=..."): logged, with a progress bar for large
    folders.
    """
    def load(i):
        data = tf.io.read_file(tf.gather(full, i))
        image = tf.io.decode_image(data, channels=3, expand_animations=False)
        image = tf.image.resize(tf.cast(image, tf.float32), [size, size],
                                antialias=True)
        return i, tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)

    full = tf.constant([os.path.join(root, p) for p in paths] or [""])
    ds = tf.data.Dataset.range(len(paths)).map(
        load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.ignore_errors().batch(512)
    if what and paths:
        logging.info("reading %s: %d image files", what, len(paths))
    bar = (keras.utils.Progbar(len(paths), unit_name="file")
           if what and len(paths) >= _PROGRESS_FROM else None)
    good, images = [], []
    # The decoders' own messages about damaged files are dropped: the files
    # that cannot be decoded are named below, in one line.
    with console.native_stderr_filtered(console.decoder_noise):
        for idx, batch in ds.as_numpy_iterator():
            good.append(idx)
            images.append(batch)
            if bar is not None:
                bar.update(int(idx[-1]) + 1)
    good = np.concatenate(good) if good else np.zeros([0], np.int64)
    images = (np.concatenate(images) if images
              else np.zeros([0, size, size, 3], np.uint8))
    bad = [os.path.join(root, paths[i])
           for i in splits.complement(good, len(paths))]
    return images, good, bad


def _report_bad(bad, skip):
    if not bad:
        return
    if skip:
        logging.warning("--skip_bad_images: skipped %d files that cannot be "
                        "decoded, e.g. %s", len(bad), bad[0])
        return
    shown = ", ".join(bad[:_MAX_LISTED])
    more = f" and {len(bad) - _MAX_LISTED} more" if len(bad) > _MAX_LISTED else ""
    raise ConfigError(
        f"{len(bad)} image files cannot be decoded: {shown}{more}; fix or "
        "remove them, or pass --skip_bad_images to skip them")


def _check_no_empty_class(root, labels, classes):
    """A class folder with no readable image would still be an output of
    the network, one it never learns: refuse it by name."""
    counts = np.bincount(labels, minlength=len(classes))
    empty = [c for c, n in zip(classes, counts) if n == 0]
    if empty:
        raise ConfigError(
            f"--train_dir={root}: the class folder(s) {', '.join(empty)} "
            "hold no image that can be read; add images to them or remove "
            "them")


# An --unlabeled_dir subfolder of images known to be of none of the classes.
OTHER_FOLDER = "_other"


def _subfolder_labels(paths, classes):
    """Class numbers of unlabeled images that sit in a subfolder named after
    a class, OUT_OF_CLASSES in `_other/`, -1 elsewhere: for diagnostics
    only (never trained on)."""
    number = {c: i for i, c in enumerate(classes)}
    number[OTHER_FOLDER] = OUT_OF_CLASSES
    labels = []
    for path in paths:
        parts = path.replace(os.sep, "/").split("/")
        labels.append(number.get(parts[0], -1) if len(parts) > 1 else -1)
    return np.asarray(labels, np.int32)


def from_config(name, params):
    """The Source for `image_folder[_<N>][_uda|_mpl]` (name: a
    registry.DatasetName)."""
    size = params.image_size
    train_paths, train_labels, classes = class_files(params.train_dir,
                                                     "train_dir")
    eval_paths, eval_labels, _ = class_files(params.eval_dir, "eval_dir",
                                             classes)
    want_unlabeled = name.mode != "supervised" and params.unlabeled_dir
    if want_unlabeled:
        _check_dir(params.unlabeled_dir, "unlabeled_dir")
        extra_paths = image_files(params.unlabeled_dir)
    else:
        extra_paths = []

    if name.mode == "supervised" and params.unlabeled_dir:
        logging.warning("--unlabeled_dir=%s is not used: --dataset_name=%s "
                        "trains on labeled images only (use %s_uda or %s_mpl "
                        "to learn from unlabeled images)", params.unlabeled_dir,
                        params.dataset_name, params.dataset_name,
                        params.dataset_name)
    train, good, bad = decode(params.train_dir, train_paths, size,
                              f"--train_dir={params.train_dir}")
    train_paths = [train_paths[i] for i in good]
    train_labels = train_labels[good]
    test, good, bad_eval = decode(params.eval_dir, eval_paths, size,
                                  f"--eval_dir={params.eval_dir}")
    eval_labels = eval_labels[good]
    extra, good_extra, bad_extra = decode(
        params.unlabeled_dir or "", extra_paths, size,
        f"--unlabeled_dir={params.unlabeled_dir}")
    extra_labels = _subfolder_labels([extra_paths[i] for i in good_extra],
                                     classes)
    bad_all = bad + bad_eval + bad_extra
    _report_bad(bad_all, params.skip_bad_images)
    if not len(train):
        raise ConfigError(f"--train_dir={params.train_dir}: no image could "
                          "be decoded; check the files")
    _check_no_empty_class(params.train_dir, train_labels, classes)

    parts = splits.partition(train_labels, name.num_labeled, params.num_val,
                             params.seed, params.labeled_in_unlabeled)
    lab, unl, val = (parts[k] for k in ("labeled", "unlabeled", "val"))
    unlabeled = np.concatenate([train[unl], extra])
    u_labels = np.concatenate([train_labels[unl], extra_labels])
    if np.all(u_labels == -1):  # nothing known about any of them
        u_labels = None
    if not len(unlabeled) and name.mode != "supervised":
        raise ConfigError(
            f"--dataset_name={params.dataset_name} trains on unlabeled images "
            "but there are none; give --unlabeled_dir or keep "
            "--labeled_in_unlabeled")
    if train[lab].nbytes + unlabeled.nbytes > MAX_TRAIN_BYTES:
        raise ConfigError(
            f"--image_size={size}: the training images take "
            f"{(train[lab].nbytes + unlabeled.nbytes) / 1e9:.1f} GB, more "
            "than the in-memory pipeline can hold (1.5 GB); use a smaller "
            "--image_size or fewer images")
    logging.info("image folders: %d classes; %d labeled, %d unlabeled (%d "
                 "from --unlabeled_dir), %d validation, %d test images",
                 len(classes), len(lab), len(unlabeled), len(extra), len(val),
                 len(test))
    mean, std = channel_stats(train)
    return Source(
        name="image_folder", num_classes=len(classes), image_size=size,
        channels=3, mean=mean, std=std,
        labeled=Split(train[lab], train_labels[lab]),
        unlabeled=Split(unlabeled, u_labels),
        test=Split(test, eval_labels),
        val=Split(train[val], train_labels[val]) if len(val) else None,
        hflip=True, fill=128.0, cutout_fraction=0.5,
        split_indices={**{k: v.tolist() for k, v in parts.items()},
                       "index_space": "positions in train_files",
                       "train_files": train_paths, "classes": classes,
                       "unlabeled_dir_images": len(extra),
                       "skipped_bad_images": len(bad_all),
                       "labeled_in_unlabeled": params.labeled_in_unlabeled})
