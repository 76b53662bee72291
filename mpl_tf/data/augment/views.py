"""The views the train step sees of one replica's batch: the only place
where a training batch is augmented.

Labeled images get the weak view (flip, pad-and-crop), or the strong one
(`labeled_view="strong"`: supervised training with --use_augment);
unlabeled images get both a weak and a strong view (augment.py). Every
random choice is drawn from keys derived from (run seed, step) for the
whole global batch and sliced to the replica's rows (`span`), so an image's
views do not depend on how the batch is split over replicas or on whether
the run was resumed. The same keys pick the in-memory pipeline's images
(`index_keys`).
"""

import tensorflow as tf

from mpl_tf.data.augment import ops as augment

# What each of a step's keys is for (tf.random.split of (seed, step)).
_LABELED_INDICES, _LABELED_VIEW, _UNLABELED_INDICES, _WEAK, _STRONG = range(5)
_NUM_KEYS = 6  # one spare: changing this count would change every draw


class Views:
    """Augments one replica's batch of a step.

    cfg: `augment.AugmentConfig`; seed: the run's seed; labeled_view: "weak"
    or "strong"; unlabeled: whether the step has unlabeled images.
    """

    def __init__(self, cfg, seed, labeled_view="weak", unlabeled=True):
        if labeled_view not in ("weak", "strong"):
            raise ValueError(f"labeled_view={labeled_view!r}: expected "
                             "'weak' or 'strong'")
        self.cfg = cfg
        self.seed = seed
        self.labeled_view = labeled_view
        needs_strong = unlabeled or labeled_view == "strong"
        self._strong = (augment.StrongAugment(cfg, seed=seed)
                        if needs_strong else None)

    def step_keys(self, step):
        """The stateless keys of global step `step` (int64 scalar)."""
        return tf.random.split(
            tf.stack([tf.constant(self.seed, tf.int64), step]), _NUM_KEYS)

    @staticmethod
    def index_keys(keys):
        """Keys for drawing (labeled, unlabeled) images of the step."""
        return keys[_LABELED_INDICES], keys[_UNLABELED_INDICES]

    def labeled(self, images, keys, span):
        """images float32 0..255 [b, S, S, C]; span = (first row of the
        global batch, global batch size, b)."""
        if self.labeled_view == "strong":
            return self._strong(images, keys[_LABELED_VIEW], span)
        return augment.flip_and_crop(images, self.cfg, keys[_LABELED_VIEW],
                                     span)

    def unlabeled(self, images, keys, span):
        """(weak view, strong view) of unlabeled images, as `labeled`."""
        weak = augment.flip_and_crop(images, self.cfg, keys[_WEAK], span)
        return weak, self._strong(images, keys[_STRONG], span)
