"""Seeded, class-balanced choice of the labeled images.

numpy's PCG64 generator gives the same choice for the same seed on every
machine and numpy version we support, so a split is a function of the seed.
"""

import numpy as np

from mpl_tf.errors import ConfigError


def class_balanced_indices(labels, num, seed, what="--dataset_name"):
    """Indices of `num` images spread as evenly over the classes as possible.

    Each class gets num // K images (one more for a seeded choice of
    num % K classes); a class with too few images gives what it has and the
    shortfall goes to the others. Returns sorted indices into `labels`.
    """
    labels = np.asarray(labels)
    if num > len(labels):
        raise ConfigError(
            f"{what}: asked for {num} labeled images but only {len(labels)} "
            f"are available; ask for at most {len(labels)}")
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    members = {c: rng.permutation(np.flatnonzero(labels == c)) for c in classes}
    quota = _water_fill({c: len(m) for c, m in members.items()}, num, rng)
    chosen = np.concatenate([members[c][:quota[c]] for c in classes])
    return np.sort(chosen)


def _water_fill(available, num, rng):
    """Per-class counts summing to `num`, as equal as `available` allows."""
    quota = {c: 0 for c in available}
    left = num
    while left > 0:
        open_classes = [c for c in available if quota[c] < available[c]]
        share, extra = divmod(left, len(open_classes))
        lucky = set(rng.permutation(open_classes)[:extra].tolist())
        for c in open_classes:
            give = min(share + (c in lucky), available[c] - quota[c])
            quota[c] += give
            left -= give
    return quota


def complement(indices, size):
    """Sorted indices in range(size) that are not in `indices`."""
    mask = np.ones(size, dtype=bool)
    mask[np.asarray(indices, dtype=np.int64)] = False
    return np.flatnonzero(mask)


# The validation split is drawn from its own stream of --seed, so the labeled
# choice keeps using the plain seed (digits_<N> with num_val=0 is unchanged).
_VAL_STREAM = 1


def partition(labels, num_labeled, num_val, seed, labeled_in_unlabeled,
              what="--dataset_name"):
    """Split a training pool into val, labeled and unlabeled positions.

    `labels` are the pool's labels. First `num_val` class-balanced images
    are set aside for validation (never trained on, not even unlabeled);
    then `num_labeled` class-balanced images of the rest are labeled
    (`None`: all of the rest). The unlabeled pool is the rest, with or
    without the labeled images (`labeled_in_unlabeled`). With num_val=0 the
    labeled choice is exactly `class_balanced_indices(labels, n, seed)`.
    Returns sorted int64 positions into `labels`: {labeled, unlabeled, val}.
    """
    labels = np.asarray(labels)
    size = len(labels)
    val = (class_balanced_indices(labels, num_val, [seed, _VAL_STREAM],
                                  what="--num_val")
           if num_val else np.zeros([0], np.int64))
    rest = complement(val, size)
    if num_labeled is None:
        labeled = rest
    else:
        labeled = rest[class_balanced_indices(labels[rest], num_labeled, seed,
                                              what=what)]
    unlabeled = rest if labeled_in_unlabeled else \
        complement(np.concatenate([val, labeled]), size)
    return {"labeled": labeled.astype(np.int64),
            "unlabeled": unlabeled.astype(np.int64),
            "val": np.asarray(val, np.int64)}
