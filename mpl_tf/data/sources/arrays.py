"""A `Source` from a user's numpy arrays: the splits they already made
(labeled, unlabeled), for `keras.Model.fit` (`mpl_tf.data.train_dataset`).
"""

import numpy as np

from mpl_tf.data.source import Source, Split


def _check_finite(images, what):
    """Refuse NaN or infinite pixels, naming the first image that has one."""
    if not np.issubdtype(images.dtype, np.floating):
        return
    bad = np.flatnonzero(~np.isfinite(images).reshape(len(images), -1)
                         .all(axis=1))
    if len(bad):
        raise ValueError(
            f"{what}[{int(bad[0])}] has NaN or infinite pixels ({len(bad)} "
            "images have); fix or drop them before training")


def arrays_source(labeled_images, labeled_labels, unlabeled_images=None,
                  unlabeled_labels=None, num_classes=None, name="arrays",
                  hflip=True, fill=128.0, cutout_fraction=0.5):
    """A `Source` from arrays: images [N, S, S, C] on the 0..255 scale
    (uint8 or float), labels int [N]. `unlabeled_labels` (-1 where unknown)
    only feed diagnostics (`mpl/pseudo_label_accuracy`); they are never
    trained on."""
    l_images = np.asarray(labeled_images)
    l_labels = np.asarray(labeled_labels).reshape(-1).astype(np.int32)
    if l_images.ndim != 4 or l_images.shape[1] != l_images.shape[2]:
        raise ValueError(f"labeled_images: expected [N, S, S, C] square "
                         f"images, got shape {l_images.shape}")
    if len(l_labels) != len(l_images):
        raise ValueError(f"{len(l_images)} labeled images but "
                         f"{len(l_labels)} labels")
    if unlabeled_images is None:
        unlabeled = Split(l_images[:0])
    else:
        u_images = np.asarray(unlabeled_images)
        if u_images.shape[1:] != l_images.shape[1:]:
            raise ValueError(f"unlabeled images {u_images.shape[1:]} differ "
                             f"from labeled images {l_images.shape[1:]}")
        u_labels = (None if unlabeled_labels is None else
                    np.asarray(unlabeled_labels).reshape(-1).astype(np.int32))
        unlabeled = Split(u_images, u_labels)
    _check_finite(l_images, "labeled_images")
    if unlabeled_images is not None:
        _check_finite(unlabeled.images, "unlabeled_images")
    classes = num_classes or int(l_labels.max()) + 1
    outside = np.flatnonzero((l_labels < 0) | (l_labels >= classes))
    if len(outside):
        i = int(outside[0])
        raise ValueError(
            f"labeled_labels[{i}] = {l_labels[i]} is not a class (0 to "
            f"{classes - 1}); {len(outside)} labels are outside the classes")
    return Source(name=name, num_classes=classes,
                  image_size=l_images.shape[1], channels=l_images.shape[-1],
                  mean=(0.0,) * l_images.shape[-1],
                  std=(1.0,) * l_images.shape[-1],
                  labeled=Split(l_images, l_labels), unlabeled=unlabeled,
                  test=Split(l_images[:0], l_labels[:0]), hflip=hflip,
                  fill=fill, cutout_fraction=cutout_fraction)
