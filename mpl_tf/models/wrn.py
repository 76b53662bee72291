"""Wide ResNet 28-k as the reference builds it (docs/design.md, section 4).

Stem 3x3 conv to 16k channels; three groups of four pre-activation blocks of
widths 16k, 32k, 64k (the second and third start with stride 2); each block
is BN -> leaky ReLU -> conv3x3 -> BN -> leaky ReLU -> conv3x3 (each BN and
its leaky ReLU one layer, `BatchNormLeakyReLU`, which keeps only its output
for backprop), with a 1x1
projection of the pre-activated input where the shape changes; head BN ->
leaky ReLU -> global average pool -> dropout -> dense.
"""

import keras

from mpl_tf.models import layers as L


def _block(x, cfg, filters, stride, name):
    pre = L.batch_norm_leaky_relu(cfg, f"{name}_bn1")(x)
    if stride != 1 or x.shape[-1] != filters:
        shortcut = L.conv(filters, 1, stride, f"{name}_proj")(pre)
    else:
        shortcut = x
    h = L.conv(filters, 3, stride, f"{name}_conv1")(pre)
    h = L.batch_norm_leaky_relu(cfg, f"{name}_bn2")(h)
    h = L.conv(filters, 3, 1, f"{name}_conv2")(h)
    return keras.layers.Add(name=f"{name}_add")([h, shortcut])


def build_wrn28(cfg, k, name):
    inputs = keras.Input((cfg.image_size, cfg.image_size, cfg.channels),
                         name="images")
    x = L.normalize_input(inputs, cfg)
    x = L.conv(16 * k, 3, 1, "stem_conv")(x)
    block = 0
    for group, width in enumerate((16 * k, 32 * k, 64 * k)):
        for i in range(4):
            block += 1
            stride = 2 if (group > 0 and i == 0) else 1
            x = _block(x, cfg, width, stride, f"block{block}")
    x = L.batch_norm_leaky_relu(cfg, "head_bn")(x)
    return keras.Model(inputs, L.classifier_head(x, cfg), name=name)
