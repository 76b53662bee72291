"""Reduced MPL's stored labels: shards, keys, top-k, and streamed sources.

The key checks are independent of the code under test: images are filled
with a constant that says which image they are, so a batch's distribution
can be checked against the image it came with after shuffling, batching
and augmentation.
"""

import os
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from mpl_tf import config, main
from mpl_tf.data import teacher_labeling as labeling
from mpl_tf.data import registry, teacher_labels
from mpl_tf.data.augment.ops import AugmentConfig
from mpl_tf.data.pipeline import TrainInput
from mpl_tf.data.source import Source, Split, StreamedSplit
from mpl_tf.errors import ConfigError

sys.path.insert(0, os.path.dirname(__file__))
from tfds_fakes import fake_prepared  # noqa: E402

C = 20           # classes: one per image value below
N_UNLABELED = 20


def test_top_k_keeps_the_largest_and_spreads_the_rest():
    p = np.array([[0.6, 0.3, 0.06, 0.04], [0.1, 0.2, 0.3, 0.4]], np.float32)
    dense = teacher_labels.densify(*teacher_labels.sparsify(p, 2), 4).numpy()
    np.testing.assert_allclose(dense, [[0.6, 0.3, 0.05, 0.05],
                                       [0.15, 0.15, 0.3, 0.4]], atol=1e-3)
    np.testing.assert_allclose(dense.sum(-1), 1.0, atol=1e-3)


def _distributions(rng, n):
    return rng.dirichlet(np.ones(C) * 0.5, size=n).astype(np.float32)


def _expected_identity(meta):
    return {k: meta[k] for k in teacher_labels.IDENTITY}


META = {"data": "fake", "num_labeled": 3, "seed": 0, "num_classes": C,
        "labeled_indices": "a", "unlabeled_indices": "b",
        "counts": {"labeled": 3, "unlabeled": 11},
        "keys": {"labeled": "position", "unlabeled": "stream"}}


@pytest.mark.parametrize("top_k", [0, 3])
def test_shards_are_read_back_by_key(tmp_path, monkeypatch, top_k):
    monkeypatch.setattr(teacher_labels, "SHARD_IMAGES", 4)
    rng = np.random.default_rng(0)
    probs = {"labeled": _distributions(rng, 3),
             "unlabeled": _distributions(rng, 11)}
    keys = {"labeled": np.arange(3),
            "unlabeled": 500 + 7 * rng.permutation(11)}  # sparse, unordered
    writer = teacher_labels.Writer(str(tmp_path / "labels"), top_k=top_k)
    for split in teacher_labels.SPLITS:
        for i in range(0, len(keys[split]), 2):   # batches of 2
            writer.add(split, keys[split][i:i + 2], probs[split][i:i + 2])
    writer.commit(META)
    meta = teacher_labels.read_meta(str(tmp_path / "labels"))
    assert len(meta["shards"]["unlabeled"]) == 3  # 4 + 4 + 3 images
    tables = teacher_labels.read(str(tmp_path / "labels"),
                                 _expected_identity(meta))
    order = rng.permutation(11)
    got = tables["unlabeled"].dense(keys["unlabeled"][order])
    want = probs["unlabeled"][order].astype(np.float16).astype(np.float32)
    if top_k:  # the k largest kept exactly; the rest share what is left
        for g, w in zip(got, want):
            top = np.argsort(-w)[:top_k]
            np.testing.assert_array_equal(g[top], w[top])
            rest = np.delete(g, top)
            np.testing.assert_allclose(rest, (1 - w[top].sum()) / (C - top_k),
                                       rtol=1e-3)
    else:
        np.testing.assert_array_equal(got, want)


def test_an_unfinished_set_leaves_the_old_one_and_a_lost_shard_is_named(
        tmp_path):
    rng = np.random.default_rng(1)
    probs = {"labeled": _distributions(rng, 3),
             "unlabeled": _distributions(rng, 11)}
    directory = str(tmp_path / "labels")
    teacher_labels.write(directory, probs, META)
    unfinished = teacher_labels.Writer(directory)  # a crash before commit
    unfinished.add("labeled", [0, 1, 2], _distributions(rng, 3))
    tables = teacher_labels.read(directory, _expected_identity(META))
    np.testing.assert_array_equal(
        tables["labeled"].dense(),
        probs["labeled"].astype(np.float16).astype(np.float32))
    os.remove(os.path.join(directory, "unlabeled-00000.npz"))
    with pytest.raises(ConfigError, match="shard files missing: unlabeled-"):
        teacher_labels.read(directory, _expected_identity(META))


# --- streamed splits: keys travel with their images --------------------------

def _value(i):
    return 10 * i + 5           # image i is filled with this value


def _fake_streamed(n, key_of):
    """A StreamedSplit of n constant images, image i keyed key_of(i)."""
    images = np.stack([np.full([8, 8, 3], _value(i), np.uint8)
                       for i in range(n)])
    keys = np.array([key_of(i) for i in range(n)], np.int64)

    def read(input_context=None, training=False, seed=0, keyed=False):
        del input_context
        ds = tf.data.Dataset.from_tensor_slices(
            (images, np.full([n], -1, np.int32), keys))
        if training:
            ds = ds.shuffle(n, seed=seed).repeat()
        return ds if keyed else ds.map(lambda x, y, k: (x, y))
    return StreamedSplit(read, n)


def _which_image():
    """A 'teacher' whose logits point at the image's index: the class of
    the value at the image's centre."""
    return keras.Sequential([
        keras.Input((8, 8, 3)),
        keras.layers.Lambda(lambda x: 20.0 * tf.one_hot(
            tf.cast((x[:, 4, 4, 0] - 5) // 10, tf.int32), C))])


def test_a_streamed_split_is_labeled_and_trained_on_by_key(tmp_path):
    labeled = Split(np.stack([np.full([8, 8, 3], _value(i), np.uint8)
                              for i in range(4)]), np.arange(4, dtype=np.int32))
    # Keys unlike positions: streamed images are found by key only.
    unlabeled = _fake_streamed(N_UNLABELED, lambda i: 3 * (N_UNLABELED - i))
    source = Source("fake", C, 8, 3, (0.0,) * 3, (1.0,) * 3, labeled, unlabeled,
                    test=labeled)
    writer = teacher_labels.Writer(str(tmp_path / "labels"))
    labeler = labeling.Labeler(_which_image())
    for name in teacher_labels.SPLITS:
        labeler.label_split(getattr(source, name), 6,
                            lambda k, p, name=name: writer.add(name, k, p))
    meta = dict(META, counts={"labeled": 4, "unlabeled": N_UNLABELED})
    writer.commit(meta)
    tables = teacher_labels.read(str(tmp_path / "labels"),
                                 _expected_identity(meta))
    cfg = AugmentConfig(image_size=8, pad=1, hflip=False, fill=0.0,
                        cutout=0, magnitude=0.0)
    ti = TrainInput(source, cfg, "mpl", 4, 3, seed=0, teacher_probs=tables)
    seen = set()
    for batch in ti.dataset().take(8):
        for views, probs in (("l_images", "l_teacher"),
                             ("u_weak", "u_teacher")):
            # The centre pixel survives a 1-pixel pad-and-crop.
            image = ((batch[views][:, 4, 4, 0].numpy() - 5) // 10).astype(int)
            np.testing.assert_array_equal(
                batch[probs].numpy().argmax(-1), image)
            assert batch[probs].numpy().max() > 0.99
            seen.update(image.tolist())
    assert len(seen) > 10  # shuffled over many images, not one batch


@pytest.fixture(scope="module", name="svhn_dir")
def _svhn_dir(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("tfds"))
    fake_prepared(root, "svhn_cropped", ["train", "test", "extra"], 30)
    return root


def test_reduced_mpl_on_svhn_with_its_streamed_extra_split(svhn_dir, tmp_path,
                                                           monkeypatch):
    """The label stage writes a streamed split in shards; a Reduced MPL run
    on the same data trains from them."""
    monkeypatch.setattr(teacher_labels, "SHARD_IMAGES", 16)
    common = dict(dataset_name="svhn_10_mpl", data_dir=svhn_dir,
                  svhn_use_extra=True, model_type="cnn-tiny",
                  train_batch_size=4, uda_data=2, eval_batch_size=16)
    p = config.defaults(output_dir=str(tmp_path / "teacher"), **common)
    with tfds.testing.mock_data(num_examples=30, data_dir=svhn_dir):
        source = registry.load_source(p)
        network = keras.Sequential([keras.Input((32, 32, 3)),
                                    keras.layers.GlobalAveragePooling2D(),
                                    keras.layers.Dense(10)])
        labeling.label(p, source, network, "none", 0)
        meta = teacher_labels.read_meta(str(tmp_path / "teacher"))
        assert meta["keys"] == {"labeled": "position", "unlabeled": "stream"}
        assert meta["counts"] == {"labeled": 10, "unlabeled": 60}
        assert len(meta["shards"]["unlabeled"]) == 4   # 16+16+16+12
        result = main.run(config.defaults(
            output_dir=str(tmp_path / "student"), num_train_steps=2,
            save_every=2, log_every=1, mpl_student_lr_wait_steps=0,
            teacher_labels=str(tmp_path / "teacher"), **common))
    assert int(result["trainer"].global_step.numpy()) == 2
