"""scikit-learn's bundled 8x8 digits as an offline semi-supervised benchmark.

1,797 images. A fixed, class-balanced test split of 600 images (60 per class)
is never trained on; the other 1,197 are the training pool, split as
`bundled.py` describes.

The 0..16 grey levels are scaled to 0..255, the images resized (bilinear) to
`image_size` (16 by default) and repeated to three channels, which keras-cv's
RandAugment needs. Digits are not mirror-symmetric: no horizontal flips.
"""

import numpy as np
import tensorflow as tf

from mpl_tf.data.sources.bundled import partitioned_source
from mpl_tf.errors import ConfigError

NUM_CLASSES = 10
DEFAULT_IMAGE_SIZE = 16
TEST_SIZE = 600
# Fixed forever: changing it would move images between test and train.
_TEST_SPLIT_SEED = 20210301


def _images(image_size):
    from sklearn.datasets import load_digits

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
    return partitioned_source(
        "digits", images, labels, NUM_CLASSES, TEST_SIZE, _TEST_SPLIT_SEED,
        num_labeled, seed, num_val=num_val,
        labeled_in_unlabeled=labeled_in_unlabeled,
        hflip=False, fill=0.0, cutout_fraction=0.25)


def from_config(name, cfg):
    """The registry's entry point (`digits_<N>[_uda|_mpl]`)."""
    size = cfg.image_size if cfg.is_set("image_size") else DEFAULT_IMAGE_SIZE
    if size < 8:
        raise ConfigError(f"--image_size={size}: digits need at least 8 "
                          "pixels")
    return load(name.num_labeled, cfg.seed, size, num_val=cfg.num_val,
                labeled_in_unlabeled=cfg.labeled_in_unlabeled)
