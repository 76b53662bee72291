"""The bundled benchmarks (scikit-learn's digits, Animal-Shape): a whole
labeled dataset split by seed.

A fixed class-balanced test split (chosen once with `test_seed`, which
--seed never touches) is never trained on. From the rest (the training
pool) `--seed` sets aside `num_val` class-balanced validation images, then
picks a class-balanced labeled split of N. The unlabeled pool is the rest
of the training pool (its true classes kept only for diagnostics), with the
labeled images in it unless `labeled_in_unlabeled` is false.
"""


from mpl_tf.data import splits
from mpl_tf.data.source import Source, Split


def partitioned_source(name, images, labels, num_classes, test_size, test_seed,
                  num_labeled, seed, num_val=0, labeled_in_unlabeled=True,
                  **augment):
    """images uint8 [n, S, S, 3], labels int32 [n]; `augment`: Source's
    hflip / fill / cutout_fraction."""
    test_idx = splits.class_balanced_indices(labels, test_size, test_seed)
    pool = splits.complement(test_idx, len(labels))
    parts = splits.partition(labels[pool], num_labeled, num_val, seed,
                             labeled_in_unlabeled)
    labeled_idx, unlabeled_idx, val_idx = (
        pool[parts[k]] for k in ("labeled", "unlabeled", "val"))
    train_pixels = images[pool].astype("float64")
    return Source(
        name=name, num_classes=num_classes, image_size=images.shape[1],
        channels=images.shape[-1],
        mean=tuple(float(m) for m in train_pixels.mean(axis=(0, 1, 2))),
        std=tuple(float(s) for s in train_pixels.std(axis=(0, 1, 2))),
        labeled=Split(images[labeled_idx], labels[labeled_idx]),
        unlabeled=Split(images[unlabeled_idx], labels[unlabeled_idx]),
        test=Split(images[test_idx], labels[test_idx]),
        val=Split(images[val_idx], labels[val_idx]) if num_val else None,
        split_indices={"labeled": labeled_idx.tolist(),
                       "unlabeled": unlabeled_idx.tolist(),
                       "val": val_idx.tolist(),
                       "test": test_idx.tolist()},
        **augment)
