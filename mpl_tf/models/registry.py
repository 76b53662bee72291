"""`--model_type` names -> builders."""

import dataclasses

from mpl_tf.errors import ConfigError
from mpl_tf.models.cnn import build_cnn, build_dense_cnn
from mpl_tf.models.resnet import build_resnet50
from mpl_tf.models.wrn import build_wrn28

_BUILDERS = {
    "wrn-28-2": lambda cfg, name: build_wrn28(cfg, 2, name),
    "wrn-28-10": lambda cfg, name: build_wrn28(cfg, 10, name),
    "resnet-50": build_resnet50,
    "cnn-small": lambda cfg, name: build_cnn(cfg, 32, name),
    "cnn-16": lambda cfg, name: build_cnn(cfg, 16, name),
    "cnn-tiny": lambda cfg, name: build_cnn(cfg, 8, name),
    # widths 32/64, flatten, dense 128: the practitioner's 28x28 CNN shape
    "cnn-32-dense": lambda cfg, name: build_dense_cnn(cfg, 32, 128, name),
    "cnn-16-dense": lambda cfg, name: build_dense_cnn(cfg, 16, 128, name),
}
MODEL_TYPES = tuple(_BUILDERS)


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Everything a network needs to know. Mean/std on the 0..255 scale."""

    model_type: str
    num_classes: int
    image_size: int
    channels: int = 3
    mean: tuple = (127.5, 127.5, 127.5)
    std: tuple = (64.0, 64.0, 64.0)
    batch_norm_decay: float = 0.99
    batch_norm_epsilon: float = 1e-3
    dense_dropout_rate: float = 0.1
    # Batch statistics over all replicas (Keras synchronized BN) instead of
    # per replica; see --batch_norm_batch_size.
    sync_batch_norm: bool = False


def check_model_type(model_type, flag="model_type"):
    if model_type not in _BUILDERS:
        raise ConfigError(
            f"--{flag}={model_type!r} is not known; choose one of: "
            f"{', '.join(MODEL_TYPES)}")


def build(cfg, name):
    """A Keras functional model mapping 0..255 images to float32 logits."""
    check_model_type(cfg.model_type)
    return _BUILDERS[cfg.model_type](cfg, name)
