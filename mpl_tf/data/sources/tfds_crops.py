"""Decoding encoded images into fixed-size uint8 crops (ImageNet-style).

Training: an "inception" crop, a random box of 8%-100% of the image's area
and aspect ratio 3/4-4/3, resized to the target size (docs/design.md, section 4).
If no such box is found in 10 tries the centre crop is used instead.
Evaluation: the central (224/256 of the shorter side) square, resized.
JPEGs are decoded only inside the box (`decode_and_crop_jpeg`), which is
what makes ImageNet reading affordable; other formats are decoded whole.
"""

import tensorflow as tf

CENTER_FRACTION = 224.0 / 256.0
AREA_RANGE = (0.08, 1.0)
ASPECT_RANGE = (3.0 / 4.0, 4.0 / 3.0)


def _shape(encoded):
    return tf.cond(
        tf.io.is_jpeg(encoded),
        lambda: tf.image.extract_jpeg_shape(encoded)[:2],
        lambda: tf.shape(_decode_whole(encoded))[:2])


def _decode_whole(encoded):
    return tf.io.decode_image(encoded, channels=3, expand_animations=False)


def _decode_window(encoded, window):
    """Decode only `window` = [y, x, h, w] of the image."""
    def other():
        y, x, h, w = tf.unstack(window)
        return tf.image.crop_to_bounding_box(_decode_whole(encoded), y, x, h, w)
    image = tf.cond(
        tf.io.is_jpeg(encoded),
        lambda: tf.image.decode_and_crop_jpeg(encoded, window, channels=3),
        other)
    return tf.ensure_shape(image, [None, None, 3])


def _center_window(shape):
    side = tf.cast(CENTER_FRACTION * tf.cast(tf.reduce_min(shape), tf.float32),
                   tf.int32)
    side = tf.maximum(side, 1)
    y = (shape[0] - side + 1) // 2
    x = (shape[1] - side + 1) // 2
    return tf.stack([y, x, side, side])


def _random_window(shape, seed):
    begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
        tf.concat([shape, [3]], 0),
        bounding_boxes=tf.constant([[[0.0, 0.0, 1.0, 1.0]]]),
        seed=seed, min_object_covered=0.1, aspect_ratio_range=ASPECT_RANGE,
        area_range=AREA_RANGE, max_attempts=10,
        use_image_if_no_bounding_boxes=True)
    window = tf.stack([begin[0], begin[1], size[0], size[1]])
    # The sampler returns the whole image when it gives up; like the
    # reference, use the centre crop then.
    gave_up = tf.reduce_all(tf.equal(size[:2], shape))
    return tf.where(gave_up, _center_window(shape), window)


def _resize(image, size):
    image = tf.image.resize(tf.cast(image, tf.float32), [size, size],
                            method="bicubic")
    return tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)


def inception_crop(encoded, size, seed):
    """Training view: random-area crop resized to size x size, uint8."""
    shape = _shape(encoded)
    return _resize(_decode_window(encoded, _random_window(shape, seed)), size)


def center_crop(encoded, size):
    """Evaluation view: central 224/256 square resized to size x size."""
    shape = _shape(encoded)
    return _resize(_decode_window(encoded, _center_window(shape)), size)


def decode_resized(encoded, size):
    """The whole image, resized to size x size if it is not already."""
    image = tf.ensure_shape(_decode_whole(encoded), [None, None, 3])
    same = tf.reduce_all(tf.equal(tf.shape(image)[:2], [size, size]))
    return tf.cond(same, lambda: tf.reshape(image, [size, size, 3]),
                   lambda: _resize(image, size))
