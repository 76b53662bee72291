"""Labeled / validation / unlabeled splits: seeded, class-balanced, disjoint."""

import numpy as np
import pytest

from mpl_tf import config
from mpl_tf.data import splits
from mpl_tf.data.sources import digits
from mpl_tf.errors import ConfigError

LABELS = np.repeat(np.arange(5), 20)  # 5 classes x 20 images


def test_same_seed_same_images_golden():
    # Pinned: numpy's PCG64 stream must keep giving these on every machine.
    parts = splits.partition(np.repeat(np.arange(3), 4), 3, 3, seed=0,
                             labeled_in_unlabeled=True)
    assert parts["val"].tolist() == [3, 5, 9]
    assert parts["labeled"].tolist() == [2, 7, 11]


def test_partition_is_seeded_and_class_balanced():
    a = splits.partition(LABELS, 25, 10, seed=7, labeled_in_unlabeled=True)
    b = splits.partition(LABELS, 25, 10, seed=7, labeled_in_unlabeled=True)
    c = splits.partition(LABELS, 25, 10, seed=8, labeled_in_unlabeled=True)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    assert not np.array_equal(a["labeled"], c["labeled"])
    assert np.bincount(LABELS[a["labeled"]]).tolist() == [5] * 5
    assert np.bincount(LABELS[a["val"]]).tolist() == [2] * 5


def test_val_is_held_out_of_everything_trained_on():
    for inside in (True, False):
        p = splits.partition(LABELS, 25, 10, seed=1,
                             labeled_in_unlabeled=inside)
        val, lab, unl = (set(p[k].tolist()) for k in ("val", "labeled",
                                                       "unlabeled"))
        assert len(val) == 10 and not val & lab and not val & unl
        if inside:
            assert lab <= unl and len(unl) == 90
        else:
            assert not lab & unl and len(lab) + len(unl) == 90


def test_no_val_keeps_the_plain_labeled_choice():
    p = splits.partition(LABELS, 25, 0, seed=3, labeled_in_unlabeled=True)
    np.testing.assert_array_equal(
        p["labeled"], splits.class_balanced_indices(LABELS, 25, 3))
    assert len(p["val"]) == 0


def test_all_labeled_when_no_number_given():
    p = splits.partition(LABELS, None, 10, seed=0, labeled_in_unlabeled=False)
    assert len(p["labeled"]) == 90 and len(p["unlabeled"]) == 0


def test_too_many_val_images_name_the_flag():
    with pytest.raises(ConfigError, match="--num_val: asked for 101"):
        splits.partition(LABELS, 5, 101, seed=0, labeled_in_unlabeled=True)


def test_digits_num_val_comes_from_training_images_not_test():
    s = digits.load(50, seed=0, num_val=100)
    idx = s.split_indices
    val, test = set(idx["val"]), set(idx["test"])
    assert len(val) == 100 and not val & test
    assert not val & set(idx["labeled"]) and not val & set(idx["unlabeled"])
    assert np.bincount(s.val.labels).tolist() == [10] * 10
    assert np.bincount(s.labeled.labels).tolist() == [5] * 10
    assert idx["test"] == digits.load(50, seed=0).split_indices["test"]


def test_negative_num_val_is_rejected():
    p = config.defaults(dataset_name="digits_50", output_dir="/tmp/unused",
                        num_val=-1)
    with pytest.raises(ConfigError, match="--num_val=-1 is not valid"):
        config.validate(p)
