"""RandAugment with stateless randomness, vectorised over a batch.

Each image gets its own `num_ops` operations, drawn uniformly from the
reference's list (identity, auto-contrast, equalize, rotate, posterize,
solarize, color, contrast, brightness, sharpness, shear x/y, translate x/y),
each at the fixed magnitude m = augment_magnitude / 30 in [0, 1], with a
random sign for the signed ones. All draws come from a stateless seed, so a
batch is a function of (seed, step): the same after a restart and however it
is split across replicas (see `span`).

Why not keras-cv's RandAugment: its ops draw from shared stateful generators
inside `tf.map_fn`, so the same input and seed give different images from run
to run, which makes an exactly resumable run impossible. It stays available
with --randaugment=keras_cv.

Image values are floats in [0, 255], shape [N, H, W, C] with C = 3.
"""

import math

import tensorflow as tf

OPS = ("identity", "auto_contrast", "equalize", "rotate", "posterize",
       "solarize", "color", "contrast", "brightness", "sharpness", "shear_x",
       "shear_y", "translate_x", "translate_y")
_GEOMETRIC = ("rotate", "shear_x", "shear_y", "translate_x", "translate_y")


def _blend(degenerate, image, factor):
    return tf.clip_by_value(degenerate + factor * (image - degenerate), 0., 255.)


def _grey(images):
    g = tf.tensordot(images, tf.constant([0.299, 0.587, 0.114]), [[3], [0]])
    return tf.repeat(g[..., None], 3, axis=-1)


def auto_contrast(images):
    lo = tf.reduce_min(images, axis=[1, 2], keepdims=True)
    hi = tf.reduce_max(images, axis=[1, 2], keepdims=True)
    scaled = (images - lo) * 255.0 / tf.maximum(hi - lo, 1e-3)
    return tf.where(hi > lo, scaled, images)


def equalize(images):
    """Histogram equalisation per image and channel (PIL's algorithm)."""
    n, h, w, c = [tf.shape(images)[i] for i in range(4)]
    values = tf.cast(tf.clip_by_value(images, 0., 255.), tf.int32)
    flat = tf.reshape(tf.transpose(values, [0, 3, 1, 2]), [n * c, h * w])
    offsets = tf.range(n * c)[:, None] * 256
    hist = tf.reshape(tf.math.bincount(flat + offsets, minlength=n * c * 256,
                                       maxlength=n * c * 256), [n * c, 256])
    hist = tf.cast(hist, tf.float32)
    # PIL: step = (pixels - count of the last non-zero bin) // 255.
    last_nonzero = tf.reduce_max(
        tf.where(hist > 0, tf.range(256)[None, :], 0), axis=1)
    last_count = tf.gather(hist, last_nonzero, batch_dims=1)
    step = tf.floor((tf.reduce_sum(hist, 1) - last_count) / 255.0)
    cdf = tf.cumsum(hist, axis=1, exclusive=True)
    lut = tf.clip_by_value(
        tf.floor((cdf + tf.floor(step / 2)[:, None]) /
                 tf.maximum(step, 1.0)[:, None]), 0., 255.)
    mapped = tf.gather(lut, flat, batch_dims=1)
    mapped = tf.where(step[:, None] > 0, mapped, tf.cast(flat, tf.float32))
    return tf.transpose(tf.reshape(mapped, [n, c, h, w]), [0, 2, 3, 1])


def posterize(images, m):
    shift = tf.cast(tf.round(4.0 * m), tf.int32)  # keep 8 - 4m bits
    v = tf.cast(images, tf.int32)
    return tf.cast(tf.bitwise.left_shift(tf.bitwise.right_shift(v, shift),
                                         shift), tf.float32)


def solarize(images, m):
    threshold = 256.0 - 256.0 * m
    return tf.where(images >= threshold, 255.0 - images, images)


def sharpness(images, factor):
    kernel = tf.constant([[1., 1., 1.], [1., 5., 1.], [1., 1., 1.]]) / 13.0
    kernel = tf.tile(kernel[:, :, None, None], [1, 1, 3, 1])
    smooth = tf.nn.depthwise_conv2d(images, kernel, [1, 1, 1, 1], "SAME")
    # PIL leaves the one-pixel border unsmoothed.
    mask = tf.pad(tf.ones_like(smooth[:, 1:-1, 1:-1]), [[0, 0], [1, 1],
                                                       [1, 1], [0, 0]])
    smooth = mask * smooth + (1.0 - mask) * images
    return _blend(smooth, images, factor)


def _transforms(op, signed_m, size):
    """Per-image projective transforms [N, 8] (output -> input coords)."""
    n = tf.shape(signed_m)[0]
    one, zero = tf.ones([n]), tf.zeros([n])
    centre = (size - 1) / 2.0
    if op == "rotate":
        angle = signed_m * 30.0 * math.pi / 180.0
        cos, sin = tf.cos(angle), tf.sin(angle)
        ox = centre - cos * centre + sin * centre
        oy = centre - sin * centre - cos * centre
        rows = [cos, -sin, ox, sin, cos, oy]
    elif op == "shear_x":
        s = signed_m * 0.3
        rows = [one, s, -s * centre, zero, one, zero]
    elif op == "shear_y":
        s = signed_m * 0.3
        rows = [one, zero, zero, s, one, -s * centre]
    elif op == "translate_x":
        rows = [one, zero, signed_m * 0.3 * size, zero, one, zero]
    else:  # translate_y
        rows = [one, zero, zero, zero, one, signed_m * 0.3 * size]
    return tf.stack(rows + [zero, zero], axis=1)


def _geometric(images, transforms, fill):
    size = tf.shape(images)[1:3]
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=images, transforms=transforms, output_shape=size,
        fill_value=fill, interpolation="BILINEAR", fill_mode="CONSTANT")


def _apply_one(images, choice, signs, m, fill):
    """Apply OPS[choice[i]] to image i; every op is computed vectorised."""
    size = tf.cast(tf.shape(images)[1], tf.float32)
    factor = (1.0 + 0.9 * m * signs)[:, None, None, None]
    identity = tf.tile(tf.constant([[1., 0., 0., 0., 1., 0., 0., 0.]]),
                       [tf.shape(images)[0], 1])
    transform = identity
    for op in _GEOMETRIC:
        chosen = tf.equal(choice, OPS.index(op))[:, None]
        transform = tf.where(chosen, _transforms(op, signs * m, size), transform)
    candidates = {
        "identity": images,
        "auto_contrast": auto_contrast(images),
        "equalize": equalize(images),
        "posterize": posterize(images, m),
        "solarize": solarize(images, m),
        "color": _blend(_grey(images), images, factor),
        "contrast": _blend(tf.reduce_mean(_grey(images), axis=[1, 2, 3],
                                          keepdims=True), images, factor),
        "brightness": _blend(tf.zeros_like(images), images, factor),
        "sharpness": sharpness(images, factor),
    }
    geometric = _geometric(images, transform, fill)
    stacked = tf.stack([geometric if op in _GEOMETRIC else candidates[op]
                        for op in OPS], axis=1)
    return tf.gather(stacked, choice, axis=1, batch_dims=1)


def rand_augment(images, seed, magnitude, num_ops=2, fill=128.0, span=None):
    """`num_ops` random ops per image at `magnitude` in [0, 1].

    `span=(start, total, size)`: these are images start..start+size of a
    global batch of `total`; draws are made for the whole batch and sliced.
    """
    batch = tf.shape(images)[0]
    start, total = (0, batch) if span is None else span[:2]
    m = tf.constant(float(magnitude))
    for k in range(num_ops):
        keys = tf.random.split(tf.random.fold_in(seed, k), 2)
        choice = tf.random.stateless_uniform([total], keys[0], 0, len(OPS),
                                             dtype=tf.int32)[start:start + batch]
        signs = tf.where(tf.random.stateless_uniform([total], keys[1]) < 0.5,
                         -1.0, 1.0)[start:start + batch]
        images = _apply_one(images, choice, signs, m, fill)
    return images
