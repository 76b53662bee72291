"""scikit-learn's bundled 8x8 digits as an offline semi-supervised benchmark.

1,797 images. A fixed, class-balanced test split of 600 images (60 per class,
chosen once with a seed that `--seed` does not touch) is never trained on.
From the other 1,197, `--seed` sets aside `num_val` class-balanced validation
images, then picks a class-balanced labeled split of N from the rest. The
unlabeled pool is the rest of the 1,197 (labels dropped), with the labeled
images in it too unless `labeled_in_unlabeled` is false.

The 0..16 grey levels are scaled to 0..255, the images resized (bilinear) to
`image_size` (16 by default) and repeated to three channels, which keras-cv's
RandAugment needs. Digits are not mirror-symmetric: no horizontal flips.
"""

import numpy as np
import tensorflow as tf

from mpl_tf.data import splits
from mpl_tf.data.source import Source, Split

NUM_CLASSES = 10
DEFAULT_IMAGE_SIZE = 16
TEST_SIZE = 600
# Fixed forever: changing it would move images between test and train.
_TEST_SPLIT_SEED = 20210301


def _images(image_size):
    from sklearn.datasets import load_digits  # pylint: disable=import-outside-toplevel

    data = load_digits()
    grey = np.clip(data.images * 16.0, 0, 255).astype(np.float32)[..., None]
    if image_size != grey.shape[1]:
        grey = tf.image.resize(grey, [image_size, image_size],
                               method="bilinear").numpy()
    rgb = np.repeat(np.clip(np.round(grey), 0, 255).astype(np.uint8), 3, -1)
    return rgb, data.target.astype(np.int32)


def load(num_labeled, seed, image_size=DEFAULT_IMAGE_SIZE, num_val=0,
         labeled_in_unlabeled=True):
    images, labels = _images(image_size)
    test_idx = splits.class_balanced_indices(labels, TEST_SIZE,
                                             _TEST_SPLIT_SEED)
    pool = splits.complement(test_idx, len(labels))
    parts = splits.partition(labels[pool], num_labeled, num_val, seed,
                             labeled_in_unlabeled)
    labeled_idx, unlabeled_idx, val_idx = (
        pool[parts[k]] for k in ("labeled", "unlabeled", "val"))
    train_pixels = images[pool].astype(np.float64)
    mean = tuple(float(m) for m in train_pixels.mean(axis=(0, 1, 2)))
    std = tuple(float(s) for s in train_pixels.std(axis=(0, 1, 2)))
    return Source(
        name="digits",
        num_classes=NUM_CLASSES,
        image_size=image_size,
        channels=3,
        mean=mean,
        std=std,
        labeled=Split(images[labeled_idx], labels[labeled_idx]),
        unlabeled=Split(images[unlabeled_idx], labels[unlabeled_idx]),
        test=Split(images[test_idx], labels[test_idx]),
        val=Split(images[val_idx], labels[val_idx]) if num_val else None,
        hflip=False,
        fill=0.0,
        cutout_fraction=0.25,
        split_indices={"labeled": labeled_idx.tolist(),
                       "unlabeled": unlabeled_idx.tolist(),
                       "val": val_idx.tolist(),
                       "test": test_idx.tolist()},
    )
