"""The Animal-Shape source (`animal_shapes_<N>`), on a small fake copy of
the package's two files (the real ones: `pip install -e '.[bench]'`)."""

import gzip
import pickle

import numpy as np
import pytest

from mpl_tf.data import registry
from mpl_tf.data.sources import animal_shapes
from mpl_tf.errors import ConfigError


@pytest.fixture(name="files")
def _files(tmp_path):
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(10), 250)
    rng.shuffle(labels)
    grey = rng.integers(0, 256, (len(labels), 28, 28), dtype=np.uint8)
    for name, array in zip(animal_shapes._FILES, (grey, labels)):
        with gzip.open(tmp_path / name, "wb") as f:
            pickle.dump(array, f)
    return tmp_path, grey, labels


def test_splits_channels_and_flips(files):
    directory, grey, labels = files
    source = animal_shapes.load(100, seed=3, directory=str(directory))
    assert registry.parse("animal_shapes_100_mpl").source == "animal_shapes"
    assert (source.image_size, source.channels, source.num_classes) == (28, 3, 10)
    assert source.hflip
    assert len(source.test) == 2000
    assert np.bincount(source.test.labels).tolist() == [200] * 10
    assert np.bincount(source.labeled.labels).tolist() == [10] * 10
    idx = source.split_indices
    assert not set(idx["test"]) & set(idx["unlabeled"])
    assert set(idx["labeled"]) <= set(idx["unlabeled"])
    assert len(source.unlabeled) == len(labels) - 2000
    first = idx["unlabeled"][0]
    np.testing.assert_array_equal(source.unlabeled.images[0],
                                  np.repeat(grey[first][..., None], 3, -1))
    np.testing.assert_array_equal(source.unlabeled.labels,
                                  labels[idx["unlabeled"]])
    again = animal_shapes.load(100, seed=3, directory=str(directory))
    assert again.split_indices == idx
    other = animal_shapes.load(100, seed=4, directory=str(directory))
    assert other.split_indices["test"] == idx["test"]  # test never moves
    assert other.split_indices["labeled"] != idx["labeled"]


def test_missing_package_says_how_to_install(monkeypatch):
    monkeypatch.setattr(animal_shapes.importlib.util, "find_spec",
                        lambda name: None)
    with pytest.raises(ConfigError, match=r"pip install -e '.\[bench\]'"):
        animal_shapes.load(100, seed=0)
