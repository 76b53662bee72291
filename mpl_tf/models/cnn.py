"""A small, fast CNN for the bundled digits and for tests.

Two stages of two conv3x3-BN-leaky-ReLU layers (widths `width`, 2*`width`)
with a 2x2 max-pool between them, then the shared head.
"""

import keras

from mpl_tf.models import layers as L


def build_cnn(cfg, width, name):
    inputs = keras.Input((cfg.image_size, cfg.image_size, cfg.channels),
                         name="images")
    x = L.normalize_input(inputs, cfg)
    for stage, filters in enumerate((width, 2 * width)):
        if stage:
            x = keras.layers.MaxPooling2D(2, name=f"pool{stage}")(x)
        for i in range(2):
            tag = f"s{stage}c{i}"
            x = L.conv(filters, 3, 1, f"{tag}_conv")(x)
            x = L.batch_norm_leaky_relu(cfg, f"{tag}_bn")(x)
    return keras.Model(inputs, L.classifier_head(x, cfg), name=name)
