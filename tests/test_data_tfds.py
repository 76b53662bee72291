"""TFDS sources (CIFAR, SVHN, ImageNet), streaming, crops, many replicas.

Offline: prepared data is faked by writing its metadata files
(tests/support/tfds_fakes.py) and reading through `tfds.testing.mock_data`, which
yields random examples (and ignores split slicing, so split logic is
checked on our own indices). Nothing may trigger a download.
"""

import os
import sys
import time

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from mpl_tf import task
from mpl_tf import config, main
from mpl_tf.data import registry
from mpl_tf.data.sources import tfds_crops as crops
from mpl_tf.data.sources import tfds_files
from mpl_tf.data.pipeline import TrainInput, eval_dataset
from mpl_tf.data.source import StreamedSplit
from mpl_tf.errors import ConfigError

sys.path.insert(0, os.path.dirname(__file__))
from tfds_fakes import fake_prepared  # noqa: E402

N = 60  # examples per mocked split


@pytest.fixture(scope="module", name="data_dir")
def _data_dir(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("tfds"))
    fake_prepared(root, "cifar10", ["train", "test"], N)
    fake_prepared(root, "cifar100", ["train", "test"], N)
    fake_prepared(root, "svhn_cropped", ["train", "test", "extra"], N)
    fake_prepared(root, "imagenet2012", ["train", "validation"], N)
    return root


def _params(data_dir, name, **overrides):
    return config.defaults(dataset_name=name, data_dir=data_dir,
                           output_dir="/tmp/unused", **overrides)


def _load(data_dir, name, **overrides):
    with tfds.testing.mock_data(num_examples=N, data_dir=data_dir):
        return registry.load_source(_params(data_dir, name, **overrides))


def test_missing_data_fails_fast_and_says_how_to_provide_it(tmp_path):
    empty = str(tmp_path / "empty")
    out = tmp_path / "run"
    start = time.time()
    with pytest.raises(ConfigError) as err:
        main.run(config.defaults(dataset_name="cifar10_4000_mpl",
                                 data_dir=empty, output_dir=str(out)))
    assert time.time() - start < 30, "must not try to download"
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith("--dataset_name=cifar10_4000_mpl needs the TFDS "
                          "dataset 'cifar10'")
    assert os.path.join(empty, "cifar10", "3.0.2") in msg
    assert "tfds.builder('cifar10', data_dir=" in msg
    assert "download_and_prepare()" in msg
    assert not out.exists()


def test_missing_imagenet_gives_the_manual_download_steps(tmp_path):
    with pytest.raises(ConfigError) as err:
        registry.load_source(_params(str(tmp_path), "imagenet_10_percent_mpl"))
    msg = str(err.value)
    assert "ILSVRC2012_img_train.tar" in msg and "ILSVRC2012_img_val.tar" in msg
    assert os.path.join(str(tmp_path), "downloads", "manual") in msg
    assert "\n" not in msg


def test_cifar10_in_memory_with_reference_normalisation(data_dir):
    s = _load(data_dir, "cifar10_20_mpl", num_val=10)
    assert (s.name, s.num_classes, s.image_size, s.channels) == (
        "cifar10", 10, 32, 3)
    assert not s.streamed
    np.testing.assert_allclose(s.mean, np.array([0.4914, 0.482158,
                                                 0.4465309]) * 255)
    np.testing.assert_allclose(s.std, np.array([0.247032, 0.243485,
                                                0.26159]) * 255)
    assert len(s.labeled) == 20 and len(s.val) == 10 and len(s.test) == N
    assert len(s.unlabeled) == N - 10  # labeled images included
    idx = s.split_indices
    assert not set(idx["val"]) & set(idx["labeled"])
    assert not set(idx["val"]) & set(idx["unlabeled"])
    cfg = task.augmentation(_params(data_dir, "cifar10_20_mpl"), s)
    assert (cfg.pad, cfg.fill, cfg.cutout, cfg.hflip) == (4, 128.0, 16, True)


def test_cifar100_classes_and_conflicting_flags(data_dir):
    assert _load(data_dir, "cifar100_10_mpl").num_classes == 100
    with pytest.raises(ConfigError, match="--num_classes=10 conflicts"):
        _load(data_dir, "cifar100_10_mpl", num_classes=10)
    with pytest.raises(ConfigError, match="--image_size=24 conflicts"):
        _load(data_dir, "cifar10_10_mpl", image_size=24)
    with pytest.raises(ConfigError, match="--svhn_use_extra applies only"):
        _load(data_dir, "cifar10_10_mpl", svhn_use_extra=True)


def test_svhn_is_not_flipped_and_extra_is_streamed(data_dir):
    s = _load(data_dir, "svhn_10_mpl")
    cfg = task.augmentation(_params(data_dir, "svhn_10_mpl"), s)
    assert (cfg.pad, cfg.fill, cfg.cutout, cfg.hflip) == (4, 128.0, 16, False)
    assert not s.streamed
    p = _params(data_dir, "svhn_10_mpl", svhn_use_extra=True)
    with tfds.testing.mock_data(num_examples=N, data_dir=data_dir):
        s = registry.load_source(p)
        assert s.streamed and isinstance(s.unlabeled, StreamedSplit)
        assert len(s.unlabeled) == N + N  # train (labeled inside) + extra
        stream = s.unlabeled.read(training=True, seed=0).batch(2 * N + 1)
        images, _ = next(iter(stream))  # repeated: more than one epoch
    assert images.shape == (2 * N + 1, 32, 32, 3) and images.dtype == tf.uint8


def test_imagenet_streams_every_split(data_dir):
    p = _params(data_dir, "imagenet_10_percent_mpl", image_size=24, num_val=5)
    with tfds.testing.mock_data(num_examples=N, data_dir=data_dir):
        s = registry.load_source(p)
        assert (s.num_classes, s.image_size, s.crop) == (1000, 24, "inception")
        assert all(isinstance(x, StreamedSplit)
                   for x in (s.labeled, s.unlabeled, s.val, s.test))
        assert len(s.labeled) == round(0.1 * N) and len(s.val) == 5
        cfg = task.augmentation(p, s)
        assert (cfg.pad, cfg.cutout, cfg.hflip) == (0, 0, True)
        # The labeled stream carries exactly the labeled images.
        labels = [int(y) for _, y in s.labeled.read(training=False)]
        assert sorted(labels) == sorted(s.labeled.labels.tolist())
        images, count = None, 0
        for images, y in eval_dataset(s.test, 16):
            count += len(y)
        assert count == N and images.shape[1:] == (24, 24, 3)
        # Supervised here (no keras-cv); the uda/mpl views of a streamed
        # source are checked in test_data_replicas.py.
        ti = TrainInput(s, cfg, "supervised", 4, 2, seed=0)
        batch = next(iter(ti.dataset()))
    assert batch["l_images"].shape == (4, 24, 24, 3)
    assert set(batch["l_labels"].numpy()) <= set(s.labeled.labels)


def test_streamed_order_is_deterministic_on_request(data_dir):
    p = _params(data_dir, "imagenet_30_uda", image_size=16)
    with tfds.testing.mock_data(num_examples=N, data_dir=data_dir):
        s = registry.load_source(p)
        ti = TrainInput(s, task.augmentation(p, s), "supervised", 4, 1,
                        seed=0, deterministic=True)

        def labels(start):
            it = iter(ti.dataset(start_step=start))
            return [next(it)["l_labels"].numpy().tolist() for _ in range(4)]
        first = labels(0)
        assert labels(0) == first
        assert labels(100) != first  # a resumed run reshuffles


def test_input_pipelines_read_disjoint_shares(data_dir):
    with tfds.testing.mock_data(num_examples=N, data_dir=data_dir):
        builder = tfds.builder("imagenet2012", data_dir=data_dir)
        shares = []
        for i in range(2):
            ctx = tf.distribute.InputContext(num_input_pipelines=2,
                                             input_pipeline_id=i,
                                             num_replicas_in_sync=2)
            ds = tfds_files.read_part(builder, "validation", None, ctx)
            shares.append({int(ex["index"]) for ex in ds})
    assert not shares[0] & shares[1]
    assert shares[0] | shares[1] == set(range(N))


def test_tfds_ids_map_to_canonical_indices():
    offsets = tf.constant([0, 10, 25], tf.int64)
    ids = tf.constant(["imagenet2012-train.tfrecord-00002-of-00003__7",
                       "x-y.array_record-00000-of-00003__3"])
    assert tfds_files.global_index(ids, offsets).numpy().tolist() == [32, 3]


def test_inception_and_center_crops():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, [60, 100, 3], dtype=np.uint8)
    for encoded in (tf.io.encode_jpeg(image), tf.io.encode_png(image)):
        crops_ = {crops.inception_crop(encoded, 20, tf.constant([s, 1]))
                  .numpy().tobytes() for s in range(6)}
        assert len(crops_) > 3  # random boxes
        center = crops.center_crop(encoded, 20)
        assert center.shape == (20, 20, 3) and center.dtype == tf.uint8
    # The centre crop is the middle 224/256 of the shorter side.
    halves = np.zeros([64, 128, 3], np.uint8)
    halves[:, 64:] = 255
    out = crops.center_crop(tf.io.encode_png(halves), 56).numpy()
    np.testing.assert_array_equal(out, halves[4:60, 36:92])


class _Unprepared:
    """A stand-in TFDS builder whose data is missing; records downloads."""

    version, data_dir_root, data_dir = "3.0.2", "/nowhere", "/nowhere/x/3.0.2"

    def __init__(self):
        self.downloads = 0

    def is_prepared(self):
        return self.downloads > 0

    def download_and_prepare(self):
        self.downloads += 1


@pytest.mark.parametrize("download", [False, True])
def test_data_download_asks_tfds_to_download_and_only_then(monkeypatch,
                                                           download):
    from mpl_tf.data.sources import tfds as tfds_source
    fake = _Unprepared()
    monkeypatch.setattr(tfds, "builder", lambda name, data_dir=None: fake)
    if download:
        assert tfds_source.prepared_builder("cifar10", "/d", "cifar10_40",
                                            download=True) is fake
        assert fake.downloads == 1
    else:
        with pytest.raises(ConfigError, match="add --data_download"):
            tfds_source.prepared_builder("cifar10", "/d", "cifar10_40")
        assert fake.downloads == 0
    assert config.defaults().data_download is False


def test_the_flag_reaches_tfds(monkeypatch):
    fake = _Unprepared()
    monkeypatch.setattr(tfds, "builder", lambda name, data_dir=None: fake)
    with pytest.raises(Exception):  # the stand-in has no data to read
        registry.load_source(_params("/d", "cifar10_40_mpl", data_download=True))
    assert fake.downloads == 1
