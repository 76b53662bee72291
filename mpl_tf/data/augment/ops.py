"""Weak and strong augmentation of image batches (docs/design.md, section 4).

Weak: random horizontal flip (where the data allows it), pad and random crop.
Strong: weak -> RandAugment (2 ops chosen per image) -> cutout -> weak
again, as in the reference.

Every op works on a whole batch at once (float32 in [0, 255], NHWC). The
randomness of flip, crop and cutout is stateless and drawn from a seed the
caller derives from (run seed, step), so the same step sees the same views
after a restart (RandAugment too, unless --randaugment=keras_cv).
"""

import dataclasses

import tensorflow as tf

from mpl_tf import config
from mpl_tf.data.augment import randaugment

# How --augment_magnitude M maps onto our RandAugment engines (our choice;
# not an op-by-op match with the reference):
# - The reference (G's augment.py) scales every op by M / 10 (its _MAX_LEVEL
#   is 10), so its CIFAR M = 16 is 1.6x its nominal maximum: rotations up to
#   48 degrees, shear 0.48, enhance factors up to 2.98. Each op fires with a
#   per-image probability drawn from [0.2, 0.8].
# - Both engines take a magnitude in [0, 1], 1 = the strongest op:
#   randaugment.py uses it as is; keras-cv's RandAugment uses it as the mean
#   of N(m, 0.15) clipped to [0, 1], always fires, and lacks rotate, invert,
#   posterize and cutout.
# We divide M by 30, the top of the RandAugment paper's magnitude scale:
# M = 16 -> 0.53, M = 17 (ImageNet) -> 0.57; anything >= 30 -> 1.
REFERENCE_MAX_MAGNITUDE = 30.0
DEFAULT_MAGNITUDE = config.RunConfig().augment_magnitude


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    """How one dataset is augmented. All sizes in pixels."""

    image_size: int
    pad: int             # pad-and-crop translation range
    hflip: bool          # digits must not be mirrored; photos may
    fill: float          # value for padding and cutout (reference: 128)
    cutout: int          # side of the cutout square
    magnitude: float     # RandAugment magnitude on the reference's 0..30 scale
    ops_per_image: int = 2
    randaugment: str = "stateless"  # or "keras_cv"; see StrongAugment

    @classmethod
    def for_source(cls, source, hflip=None, magnitude=DEFAULT_MAGNITUDE,
                   randaugment="stateless", cutout_fraction=None):
        """A source's augmentation, as the reference frames it: pad
        image_size/8 (4 at 32), cutout from the source's fraction (16 of
        32), the source's fill (reference: 128). Inception-cropped sources
        are flipped only, not padded. `hflip` and `cutout_fraction`, unless
        None, override the source's own choices."""
        size = source.image_size
        fraction = (source.cutout_fraction if cutout_fraction is None
                    else cutout_fraction)
        return cls(image_size=size,
                   pad=0 if source.crop == "inception" else max(1, size // 8),
                   hflip=source.hflip if hflip is None else hflip,
                   fill=source.fill, cutout=int(round(size * fraction)),
                   magnitude=magnitude, randaugment=randaugment)

    def get_config(self):
        return dataclasses.asdict(self)


def _draw(seed, span, maxval=None):
    """Per-image random numbers for images span=(start, total) of a batch.

    Numbers are drawn for the whole global batch (`total`) and sliced, so an
    image gets the same augmentation however the batch is split over
    replicas.
    """
    start, total, size = span
    if maxval is None:
        values = tf.random.stateless_uniform([total], seed)
    else:
        values = tf.random.stateless_uniform([total], seed, 0, maxval,
                                             dtype=tf.int32)
    return values[start:start + size]


def _span(images, span):
    if span is None:
        batch = tf.shape(images)[0]
        return (0, batch, batch)
    return span


def flip_and_crop(images, cfg, seed, span=None):
    """Random horizontal flip (if allowed) and pad-`cfg.pad`-random-crop.

    `span=(start, total, size)` says which images of a global batch these are.
    """
    span = _span(images, span)
    seeds = tf.random.split(seed, 3)
    if cfg.hflip:
        flip = _draw(seeds[0], span) < 0.5
        images = tf.where(flip[:, None, None, None],
                          tf.reverse(images, axis=[2]), images)
    if cfg.pad > 0:
        p = cfg.pad
        size = cfg.image_size
        padded = tf.pad(images, [[0, 0], [p, p], [p, p], [0, 0]],
                        constant_values=cfg.fill)
        dy = _draw(seeds[1], span, 2 * p + 1)
        dx = _draw(seeds[2], span, 2 * p + 1)
        rows = dy[:, None] + tf.range(size)[None, :]
        cols = dx[:, None] + tf.range(size)[None, :]
        images = tf.gather(padded, rows, axis=1, batch_dims=1)
        images = tf.gather(images, cols, axis=2, batch_dims=1)
    return images


def cutout(images, cfg, seed, span=None):
    """Fill one `cfg.cutout`-sided square per image, centred anywhere."""
    if cfg.cutout <= 0:
        return images
    span = _span(images, span)
    seeds = tf.random.split(seed, 2)
    size = cfg.image_size
    cy = _draw(seeds[0], span, size)
    cx = _draw(seeds[1], span, size)
    half = cfg.cutout // 2
    grid = tf.range(size)
    in_rows = tf.abs(grid[None, :] - cy[:, None]) < half + cfg.cutout % 2
    in_cols = tf.abs(grid[None, :] - cx[:, None]) < half + cfg.cutout % 2
    inside = in_rows[:, :, None] & in_cols[:, None, :]
    return tf.where(inside[..., None], tf.cast(cfg.fill, images.dtype), images)


class StrongAugment:
    """Strong view of a batch: flip/crop -> RandAugment -> cutout -> flip/crop.

    engine "stateless" (default): `randaugment.rand_augment`, ops picked per
    image from a stateless seed, so the view is a function of (seed, step).
    engine "keras_cv": keras-cv's RandAugment (also per image), faster but
    not reproducible run to run. Both need three channels.
    """

    def __init__(self, cfg, seed=0):
        self.cfg = cfg
        self.engine = engine = cfg.randaugment
        self._magnitude = min(cfg.magnitude / REFERENCE_MAX_MAGNITUDE, 1.0)
        if engine == "keras_cv":
            import keras_cv  #  (slow import)

            self._keras_cv = keras_cv.layers.RandAugment(
                value_range=(0, 255), augmentations_per_image=cfg.ops_per_image,
                magnitude=self._magnitude, seed=seed)

    def __call__(self, images, seed, span=None):
        seeds = tf.random.split(seed, 4)
        images = flip_and_crop(images, self.cfg, seeds[0], span)
        if self.engine == "keras_cv":
            images = self._keras_cv(images)
        else:
            images = randaugment.rand_augment(
                images, seeds[3], self._magnitude, self.cfg.ops_per_image,
                self.cfg.fill, span)
        images = tf.clip_by_value(tf.cast(images, tf.float32), 0.0, 255.0)
        images = cutout(images, self.cfg, seeds[1], span)
        return flip_and_crop(images, self.cfg, seeds[2], span)


def augment_config(source, augment=None):
    """How `source` is augmented (`AugmentConfig.for_source`: pad
    image_size/8, cutout from the source's fraction, its flip and fill,
    RandAugment magnitude 5 on the reference's 0..30 scale), with `augment`
    overriding fields by name: hflip and cutout_fraction (None: the
    source's choice), magnitude, randaugment, and any other AugmentConfig
    field (image_size,
    pad, fill, cutout, ops_per_image). An `AugmentConfig` is used as is.
    The command line passes its --hflip, --augment_magnitude and
    --randaugment here; `fit` users their own dict."""
    if isinstance(augment, AugmentConfig):
        return augment
    augment = dict(augment or {})
    cfg = AugmentConfig.for_source(
        source, augment.pop("hflip", None),
        augment.pop("magnitude", DEFAULT_MAGNITUDE),
        augment.pop("randaugment", "stateless"),
        augment.pop("cutout_fraction", None))
    unknown = set(augment) - set(cfg.get_config())
    if unknown:
        raise ValueError(f"augment: unknown keys {sorted(unknown)}; known: "
                         f"{sorted(cfg.get_config())}")
    return dataclasses.replace(cfg, **augment)
