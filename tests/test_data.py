"""Digits splits, augmentation and the training input."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from mpl_tf import config
from mpl_tf import task
from mpl_tf.data import registry, splits
from mpl_tf.data.augment import ops as augment
from mpl_tf.data.sources import digits
from mpl_tf.data.pipeline import TrainInput
from mpl_tf.data.source import Source, Split, StreamedSplit
from mpl_tf.errors import ConfigError


def test_class_balanced_split_is_seeded_and_balanced():
    labels = np.repeat(np.arange(10), 30)
    a = splits.class_balanced_indices(labels, 50, seed=3)
    b = splits.class_balanced_indices(labels, 50, seed=3)
    c = splits.class_balanced_indices(labels, 50, seed=4)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert np.bincount(labels[a], minlength=10).tolist() == [5] * 10


def test_uneven_classes_fill_from_the_others():
    labels = np.array([0] * 2 + [1] * 20 + [2] * 20)
    idx = splits.class_balanced_indices(labels, 12, seed=0)
    assert np.bincount(labels[idx]).tolist() == [2, 5, 5]
    with pytest.raises(ConfigError, match="only 42 are available"):
        splits.class_balanced_indices(labels, 43, seed=0)


def test_digits_splits_are_disjoint_and_test_is_fixed():
    s1 = digits.load(50, seed=1)
    s2 = digits.load(50, seed=2)
    idx1, idx2 = s1.split_indices, s2.split_indices
    assert idx1["test"] == idx2["test"] and len(idx1["test"]) == 600
    assert idx1["labeled"] != idx2["labeled"]
    # Default (--labeled_in_unlabeled, as the reference): the unlabeled pool
    # is all 1,197 non-test images, the labeled ones included.
    assert set(idx1["labeled"]) <= set(idx1["unlabeled"])
    assert sorted(idx1["unlabeled"] + idx1["test"]) == list(range(1797))
    # --nolabeled_in_unlabeled: labeled + unlabeled + test partition them.
    s3 = digits.load(50, seed=1, labeled_in_unlabeled=False)
    idx3 = s3.split_indices
    assert idx3["labeled"] == idx1["labeled"]
    all3 = idx3["labeled"] + idx3["unlabeled"] + idx3["test"]
    assert sorted(all3) == list(range(1797))
    assert np.bincount(s1.labeled.labels).tolist() == [5] * 10
    # The unlabeled images' true classes ride along for diagnostics only.
    images, labels = digits._images(16)
    unl = idx1["unlabeled"]
    np.testing.assert_array_equal(s1.unlabeled.images, images[unl])
    np.testing.assert_array_equal(s1.unlabeled.labels, labels[unl])
    assert s1.labeled.images.shape[1:] == (16, 16, 3)
    assert s1.labeled.images.dtype == np.uint8


def test_dataset_names():
    assert registry.parse("digits_50_mpl") == registry.DatasetName("digits", 50, "mpl")
    assert registry.parse("cifar10_4000").mode == "supervised"
    assert registry.parse("imagenet_10_percent_uda").labeled_fraction == 0.1
    with pytest.raises(ConfigError, match="not a dataset name"):
        registry.parse("mnist_50_mpl")
    with pytest.raises(ConfigError, match="give the number of labeled"):
        registry.parse("digits_mpl")


def _mpl_input(global_batch=8, uda_data=3):
    p = config.defaults(dataset_name="digits_40_mpl", output_dir="/tmp/x",
                        augment_magnitude=10)
    source = registry.load_source(p)
    cfg = task.augmentation(p, source)
    return TrainInput(source, cfg, "mpl", global_batch, uda_data, seed=0), cfg


def test_train_input_shapes_and_views_differ():
    train_input, _ = _mpl_input()
    batch = next(iter(train_input.dataset()))
    assert batch["l_images"].shape == (8, 16, 16, 3)
    assert batch["l_labels"].shape == (8,)
    assert batch["u_weak"].shape == batch["u_strong"].shape == (24, 16, 16, 3)
    weak, strong = batch["u_weak"].numpy(), batch["u_strong"].numpy()
    assert weak.min() >= 0 and strong.max() <= 255
    assert not np.allclose(weak, strong)


def test_strong_augment_differs_per_image():
    _, cfg = _mpl_input()
    strong = augment.StrongAugment(cfg, seed=0)
    same = tf.repeat(tf.constant(digits.load(40, 0).unlabeled.images[:1],
                                 tf.float32), 16, axis=0)
    out = strong(same, tf.constant([1, 2], tf.int64)).numpy()
    distinct = {out[i].tobytes() for i in range(16)}
    assert len(distinct) > 8, "each image must get its own augmentation"


def test_data_order_is_a_function_of_seed_and_step():
    train_input, _ = _mpl_input()
    it = iter(train_input.dataset())
    batches = [next(it) for _ in range(3)]
    resumed = next(iter(train_input.dataset(start_step=2)))
    np.testing.assert_array_equal(batches[2]["l_labels"], resumed["l_labels"])
    np.testing.assert_array_equal(batches[2]["l_images"], resumed["l_images"])
    np.testing.assert_array_equal(batches[2]["u_weak"], resumed["u_weak"])


def test_streamed_and_in_memory_sources_get_the_same_views():
    """Views are made in one place: with every image the same picture, an
    in-memory and a streamed unlabeled split give the same views at the
    same (seed, step, replica), here split over 2 replicas, resumed at 3."""
    picture = (np.arange(12 * 12 * 3).reshape(12, 12, 3) * 7 % 251
               ).astype(np.uint8)
    copies = np.repeat(picture[None], 20, axis=0)
    zeros = np.zeros([20], np.int32)

    def read(input_context=None, training=False, seed=0, keyed=False):
        del input_context, training, seed
        row = (picture, np.int32(0)) + ((np.int64(0),) if keyed else ())
        return tf.data.Dataset.from_tensors(row).repeat()

    in_memory = Source(name="same", num_classes=10, image_size=12,
                       channels=3, mean=(0.0,) * 3, std=(1.0,) * 3,
                       labeled=Split(copies, zeros),
                       unlabeled=Split(copies, zeros),
                       test=Split(copies, zeros), hflip=True)
    streamed = dataclasses.replace(
        in_memory, unlabeled=StreamedSplit(read, 20, zeros))
    assert streamed.streamed and not in_memory.streamed
    context = tf.distribute.InputContext(num_input_pipelines=1,
                                         input_pipeline_id=0,
                                         num_replicas_in_sync=2)
    cfg = task.augmentation(config.defaults(), in_memory)
    batches = []
    for source in (in_memory, streamed):
        # deterministic: a streamed source's elements may otherwise come out
        # of order (each still right for its own step and replica).
        train_input = TrainInput(source, cfg, "mpl", 4, 3, seed=5,
                                 deterministic=True)
        batches.append(list(train_input.dataset(context, start_step=3)
                            .take(4).as_numpy_iterator()))
    for memory_batch, streamed_batch in zip(*batches):
        assert memory_batch.keys() == streamed_batch.keys()
        for key in memory_batch:
            np.testing.assert_array_equal(memory_batch[key],
                                          streamed_batch[key], err_msg=key)
    views = [b["u_strong"][0] for b in batches[0]]
    assert len({v.tobytes() for v in views}) == 4  # not all the same view


def test_flip_crop_and_cutout():
    cfg = augment.AugmentConfig(image_size=8, pad=2, hflip=True, fill=128.0,
                                cutout=4, magnitude=0)
    images = tf.zeros([4, 8, 8, 3])
    out = augment.cutout(images, cfg, tf.constant([0, 1], tf.int64)).numpy()
    for img in out:
        filled = (img[..., 0] == 128).sum()
        assert 4 <= filled <= 16  # a 4x4 square, clipped at the border
    moved = augment.flip_and_crop(tf.ones([64, 8, 8, 1]), cfg,
                                  tf.constant([3, 4], tf.int64)).numpy()
    assert (moved == 128).any() and (moved == 1).any()


def test_cutout_fraction_sets_the_strong_views_cutout():
    source = digits.load(10, seed=0, image_size=16)  # its own fraction: 0.25
    unset = config.defaults(dataset_name="digits_10", output_dir="/tmp/x")
    assert task.augmentation(unset, source).cutout == 4
    half = config.defaults(dataset_name="digits_10", output_dir="/tmp/x",
                           cutout_fraction=0.5)
    assert task.augmentation(half, source).cutout == 8
    off = config.defaults(dataset_name="digits_10", output_dir="/tmp/x",
                          cutout_fraction=0.0)
    assert task.augmentation(off, source).cutout == 0
    with pytest.raises(ConfigError, match="--cutout_fraction=1.5 is not"):
        config.check(config.defaults(dataset_name="digits_10",
                                     output_dir="/tmp/x", cutout_fraction=1.5))
