"""Small building blocks shared by the networks."""

import keras


def batch_norm(cfg, name):
    return keras.layers.BatchNormalization(
        momentum=cfg.batch_norm_decay, epsilon=cfg.batch_norm_epsilon,
        synchronized=cfg.sync_batch_norm, name=name)


def leaky_relu(name):
    # The reference uses leaky ReLU with slope 0.2 throughout its WRN.
    return keras.layers.LeakyReLU(negative_slope=0.2, name=name)


def conv(filters, kernel, stride, name):
    return keras.layers.Conv2D(
        filters, kernel, strides=stride, padding="same", use_bias=False,
        kernel_initializer="he_normal", name=name)


def normalize_input(inputs, cfg):
    """Images arrive as 0..255 floats; standardise with the data's stats."""
    variance = [s * s for s in cfg.std]
    return keras.layers.Normalization(mean=list(cfg.mean), variance=variance,
                                      name="normalize")(inputs)


def classifier_head(x, cfg):
    """GAP -> dropout -> dense; logits always float32 (bfloat16-safe)."""
    x = keras.layers.GlobalAveragePooling2D(name="head_pool")(x)
    x = keras.layers.Dropout(cfg.dense_dropout_rate, name="head_dropout")(x)
    x = keras.layers.Dense(cfg.num_classes, name="head_dense")(x)
    return keras.layers.Activation("linear", dtype="float32", name="logits")(x)
