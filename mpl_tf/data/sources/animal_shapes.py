"""Animal-Shape: 10,000 real 28x28 grey silhouettes of 10 animals, offline.

A harder proxy than the 8x8 digits: larger images, more unlabeled images,
classes that differ by shape and texture (bear, bird, cat, cow, dog,
elephant, giraffe, horse, sheep, zebra; 1,000 each). The images ship inside
the PyPI package `animal-mnist` (MIT licence; `pip install -e '.[bench]'`),
as two gzipped pickles of numpy arrays; we read those files directly and
never import the package (its loader imports Keras' downloading datasets).

A fixed class-balanced test split of 2,000 images; the other 8,000 are the
training pool (`bundled.py`). Grey levels are repeated to three channels.
Silhouettes keep their class when mirrored: horizontal flips on.
"""

import gzip
import importlib.util
import os
import pickle

import numpy as np

from mpl_tf.data.sources.bundled import partitioned_source
from mpl_tf.errors import ConfigError

NUM_CLASSES = 10
IMAGE_SIZE = 28
TEST_SIZE = 2000
PACKAGE = "animal_mnist"
_FILES = ("animal_data_version_3.gz", "animal_label_version_3.gz")
# Fixed forever: changing it would move images between test and train.
_TEST_SPLIT_SEED = 20261127


def data_dir():
    """Where the installed package keeps its two files."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            "--dataset_name=animal_shapes_*: the images come with the PyPI "
            "package animal-mnist, which is not installed; run "
            "pip install -e '.[bench]' (or pip install --no-deps animal-mnist)")
    return os.path.join(list(spec.submodule_search_locations)[0], "data",
                        "Animal_MNIST")


def read(directory=None):
    """(images uint8 [10000, 28, 28, 3], labels int32 [10000])."""
    directory = directory or data_dir()
    arrays = []
    for name in _FILES:
        path = os.path.join(directory, name)
        if not os.path.isfile(path):
            raise ConfigError(f"{path} is missing: reinstall animal-mnist")
        with gzip.open(path, "rb") as f:
            arrays.append(np.asarray(pickle.load(f)))
    grey, labels = arrays
    if grey.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE) or len(grey) != len(labels):
        raise ConfigError(f"{directory}: unexpected arrays {grey.shape}, "
                          f"{labels.shape}; reinstall animal-mnist 0.4")
    images = np.repeat(grey.astype(np.uint8)[..., None], 3, axis=-1)
    return images, labels.astype(np.int32)


def load(num_labeled, seed, num_val=0, labeled_in_unlabeled=True,
         directory=None):
    images, labels = read(directory)
    return partitioned_source(
        "animal_shapes", images, labels, NUM_CLASSES, TEST_SIZE,
        _TEST_SPLIT_SEED, num_labeled, seed, num_val=num_val,
        labeled_in_unlabeled=labeled_in_unlabeled,
        hflip=True, fill=0.0, cutout_fraction=0.5)


def from_config(name, cfg):
    """The registry's entry point (`animal_shapes_<N>[_uda|_mpl]`)."""
    return load(name.num_labeled, cfg.seed, num_val=cfg.num_val,
                labeled_in_unlabeled=cfg.labeled_in_unlabeled)
