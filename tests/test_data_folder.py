"""--dataset_name=image_folder*: class folders, unlabeled folder, bad files."""

import logging
import os

import numpy as np
import pytest
import tensorflow as tf

from mpl_tf import task
from mpl_tf import config, main
from mpl_tf.data import registry
from mpl_tf.data.sources import folder
from mpl_tf.data.pipeline import TrainInput
from mpl_tf.errors import ConfigError


def _write(path, seed, size=(20, 14), fmt="png"):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, [*size, 3], dtype=np.uint8)
    encode = tf.io.encode_png if fmt == "png" else tf.io.encode_jpeg
    tf.io.write_file(path, encode(image))


@pytest.fixture(name="folders")
def _folders(tmp_path):
    """train: 2 classes x 6 images (PNG + JPEG, one nested) + 1 corrupt file;
    unlabeled: 5 images at any depth; eval: 2 x 2 images."""
    train, unl, ev = (str(tmp_path / d) for d in ("train", "unl", "eval"))
    for c, name in enumerate(("cat", "dog")):
        for i in range(6):
            fmt = "jpg" if i % 2 else "png"
            sub = "nested/" if i == 5 else ""
            _write(f"{train}/{name}/{sub}{i}.{fmt}", 10 * c + i, fmt=fmt)
        for i in range(2):
            _write(f"{ev}/{name}/{i}.png", 100 + 10 * c + i)
    for i in range(5):
        _write(f"{unl}/a{'/b' * i}/{i}.jpeg", 200 + i, fmt="jpg")
    with open(f"{train}/dog/broken.jpg", "wb") as f:
        f.write(b"this is not a JPEG")
    with open(f"{train}/cat/notes.txt", "w", encoding="utf-8") as f:
        f.write("ignored: not an image extension")
    return {"train_dir": train, "unlabeled_dir": unl, "eval_dir": ev,
            "broken": f"{train}/dog/broken.jpg"}


def _params(folders, **overrides):
    values = dict(dataset_name="image_folder_mpl", output_dir="/tmp/unused",
                  train_dir=folders["train_dir"],
                  unlabeled_dir=folders["unlabeled_dir"],
                  eval_dir=folders["eval_dir"], image_size=16)
    values.update(overrides)
    return config.defaults(**values)


def test_names():
    assert registry.parse("image_folder") == registry.DatasetName(
        "image_folder", None, "supervised")
    assert registry.parse("image_folder_uda").mode == "uda"
    assert registry.parse("image_folder_4_mpl") == registry.DatasetName(
        "image_folder", 4, "mpl")


def test_corrupt_file_stops_the_run_with_its_path(folders, tmp_path):
    with pytest.raises(ConfigError) as err:
        registry.load_source(_params(folders))
    msg = str(err.value)
    assert folders["broken"] in msg and "--skip_bad_images" in msg
    assert msg.startswith("1 image files cannot be decoded")
    assert "\n" not in msg
    # Through main: nothing written.
    out = tmp_path / "run"
    with pytest.raises(ConfigError):
        main.run(_params(folders, output_dir=str(out)))
    assert not out.exists()


def test_skip_bad_images_skips_and_counts(folders, caplog):
    caplog.set_level(logging.WARNING)
    source = registry.load_source(_params(folders, skip_bad_images=True))
    assert "skipped 1 files" in caplog.text
    assert source.split_indices["skipped_bad_images"] == 1
    assert source.num_classes == 2 and source.image_size == 16
    assert source.labeled.images.shape == (12, 16, 16, 3)
    assert source.labeled.images.dtype == np.uint8
    assert np.bincount(source.labeled.labels).tolist() == [6, 6]
    # Labeled images are in the unlabeled pool by default, plus the 5 extra.
    assert len(source.unlabeled) == 12 + 5
    assert np.bincount(source.test.labels).tolist() == [2, 2]
    files = source.split_indices["train_files"]
    assert "cat/notes.txt" not in files and "dog/nested/5.jpg" in files
    assert files == sorted(files)


def test_labeled_subset_val_and_unlabeled_pool(folders):
    p = _params(folders, dataset_name="image_folder_4_mpl", num_val=2,
                skip_bad_images=True, labeled_in_unlabeled=False, seed=3)
    source = registry.load_source(p)
    idx = source.split_indices
    assert np.bincount(source.labeled.labels).tolist() == [2, 2]
    assert np.bincount(source.val.labels).tolist() == [1, 1]
    assert not set(idx["val"]) & set(idx["labeled"])
    assert len(source.unlabeled) == 12 - 4 - 2 + 5
    again = registry.load_source(p).split_indices
    assert again["labeled"] == idx["labeled"] and again["val"] == idx["val"]
    batch = next(iter(TrainInput(source, task.augmentation(p, source),
                                 "mpl", 4, 2, seed=0).dataset()))
    assert batch["l_images"].shape == (4, 16, 16, 3)
    assert batch["u_strong"].shape == (8, 16, 16, 3)


def test_eval_class_unknown_to_train(folders):
    os.makedirs(os.path.join(folders["eval_dir"], "zebra"))
    _write(os.path.join(folders["eval_dir"], "zebra", "z.png"), 1)
    with pytest.raises(ConfigError, match="--eval_dir=.* has classes that "
                                          "--train_dir lacks: zebra"):
        folder.class_files(folders["eval_dir"], "eval_dir", ["cat", "dog"])


@pytest.mark.parametrize("overrides,needle", [
    (dict(train_dir=None), "--train_dir is required"),
    (dict(eval_dir="/no/such/dir"), "--eval_dir=/no/such/dir is not a directory"),
    (dict(dataset_name="digits_50"), "--train_dir applies only to image_folder"),
])
def test_bad_folder_flags(folders, overrides, needle):
    with pytest.raises(ConfigError, match=needle):
        registry.load_source(_params(folders, **overrides))


def test_hflip_flag_overrides_the_sources_choice(folders):
    p = _params(folders, skip_bad_images=True)
    source = registry.load_source(p)
    assert task.augmentation(p, source).hflip  # folders: on by default
    off = _params(folders, skip_bad_images=True, hflip=False)
    assert not task.augmentation(off, source).hflip
    digits = config.defaults(dataset_name="digits_50", output_dir="/tmp/x")
    d_source = registry.load_source(digits)
    assert not task.augmentation(digits, d_source).hflip
    on = config.defaults(dataset_name="digits_50", output_dir="/tmp/x",
                         hflip=True)
    assert task.augmentation(on, d_source).hflip


def test_unlabeled_labels_from_class_subfolders_for_diagnosis(folders):
    _write(os.path.join(folders["unlabeled_dir"], "dog", "d.png"), 7)
    p = _params(folders, skip_bad_images=True, dataset_name="image_folder_4_mpl",
                labeled_in_unlabeled=False)
    source = registry.load_source(p)
    labels = source.unlabeled.labels
    # 12 - 4 labeled train images (known), then the 6 extra files in sorted
    # path order: a/... (5, unknown) and dog/d.png (class 1).
    assert len(labels) == len(source.unlabeled) == 8 + 6
    assert (labels[:8] >= 0).all()
    assert labels[8:].tolist() == [-1] * 5 + [1]
    batch = next(iter(TrainInput(source, task.augmentation(p, source),
                                 "mpl", 4, 2, seed=0).dataset()))
    assert batch["u_labels"].shape == (8,)
    assert "u_out_of_classes" not in batch  # nothing known to be out


def test_an_other_subfolder_marks_images_of_none_of_the_classes(folders):
    _write(os.path.join(folders["unlabeled_dir"], "_other", "x.png"), 8)
    _write(os.path.join(folders["unlabeled_dir"], "_other", "y", "z.png"), 9)
    p = _params(folders, skip_bad_images=True, dataset_name="image_folder_4_mpl",
                labeled_in_unlabeled=False)
    source = registry.load_source(p)
    # sorted paths: _other/x.png, _other/y/z.png, then a/... (unknown)
    assert source.unlabeled.labels[8:].tolist() == [-2, -2] + [-1] * 5
    batch = next(iter(TrainInput(source, task.augmentation(p, source),
                                 "mpl", 8, 4, seed=0).dataset()))
    np.testing.assert_array_equal(batch["u_out_of_classes"],
                                  (batch["u_labels"] == -2).numpy())


def test_reading_folders_says_what_it_reads(folders, caplog):
    caplog.set_level(logging.INFO, logger="absl")
    registry.load_source(_params(folders, skip_bad_images=True))
    assert f"reading --train_dir={folders['train_dir']}: 13 image files" \
        in caplog.text
    assert "image folders: 2 classes; 12 labeled, 17 unlabeled (5 from " \
        "--unlabeled_dir), 0 validation, 4 test images" in caplog.text


def test_supervised_run_says_it_ignores_the_unlabeled_dir(folders, caplog):
    caplog.set_level(logging.WARNING)
    registry.load_source(_params(folders, skip_bad_images=True,
                               dataset_name="image_folder"))
    assert f"--unlabeled_dir={folders['unlabeled_dir']} is not used" \
        in caplog.text
