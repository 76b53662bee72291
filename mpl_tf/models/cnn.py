"""Small, fast CNNs for the bundled proxies and for tests.

`build_cnn`: two stages of two conv3x3-BN-leaky-ReLU layers (widths
`width`, 2*`width`) with a 2x2 max-pool between them, then the shared head
(global average pool, dropout, dense).

`build_dense_cnn` (`dense` units): the same two stages with a 2x2 max-pool
after each, then flatten -> dense-BN-leaky-ReLU -> dropout -> dense: the
shape of the plain Keras CNN practitioners train on 28x28 images
(benchmarks/keras_baseline.py), which keeps where in the image a stroke
is instead of averaging it away.
"""

import keras

from mpl_tf.models import layers as L


def _stages(x, cfg, width, pool_last=False):
    for stage, filters in enumerate((width, 2 * width)):
        if stage:
            x = keras.layers.MaxPooling2D(2, name=f"pool{stage}")(x)
        for i in range(2):
            tag = f"s{stage}c{i}"
            x = L.conv(filters, 3, 1, f"{tag}_conv")(x)
            x = L.batch_norm_leaky_relu(cfg, f"{tag}_bn")(x)
    if pool_last:
        x = keras.layers.MaxPooling2D(2, name="pool2")(x)
    return x


def build_cnn(cfg, width, name):
    inputs = keras.Input((cfg.image_size, cfg.image_size, cfg.channels),
                         name="images")
    x = _stages(L.normalize_input(inputs, cfg), cfg, width)
    return keras.Model(inputs, L.classifier_head(x, cfg), name=name)


def build_dense_cnn(cfg, width, dense, name):
    inputs = keras.Input((cfg.image_size, cfg.image_size, cfg.channels),
                         name="images")
    x = _stages(L.normalize_input(inputs, cfg), cfg, width, pool_last=True)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(dense, use_bias=False,
                           kernel_initializer="he_normal", name="fc")(x)
    x = L.batch_norm_leaky_relu(cfg, "fc_bn")(x)
    x = keras.layers.Dropout(cfg.dense_dropout_rate, name="head_dropout")(x)
    x = keras.layers.Dense(cfg.num_classes, name="head_dense")(x)
    logits = keras.layers.Activation("linear", dtype="float32",
                                     name="logits")(x)
    return keras.Model(inputs, logits, name=name)
