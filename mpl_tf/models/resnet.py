"""ResNet-50 for ImageNet-style data: keras.applications' ResNet50 body
(random init) with our input normalisation and classifier head."""

import keras

from mpl_tf.models import layers as L


def build_resnet50(cfg, name):
    inputs = keras.Input((cfg.image_size, cfg.image_size, cfg.channels),
                         name="images")
    x = L.normalize_input(inputs, cfg)
    body = keras.applications.ResNet50(
        include_top=False, weights=None,
        input_shape=(cfg.image_size, cfg.image_size, cfg.channels))
    x = body(x)
    return keras.Model(inputs, L.classifier_head(x, cfg), name=name)
