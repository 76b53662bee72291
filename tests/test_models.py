import numpy as np
import pytest

from mpl_tf.errors import ConfigError
from mpl_tf.models import registry


def _trainable(model):
    return sum(int(np.prod(v.shape)) for v in model.trainable_variables)


def test_wrn_28_2_has_the_reference_size():
    model = registry.build(registry.ModelConfig("wrn-28-2", 10, 32), "w")
    assert abs(_trainable(model) - 1.47e6) / 1.47e6 < 0.01
    assert model.output_shape == (None, 10)


def test_models_follow_flags_and_give_float32_logits():
    cfg = registry.ModelConfig("cnn-tiny", 7, 12, batch_norm_decay=0.9,
                               batch_norm_epsilon=1e-2, dense_dropout_rate=0.3)
    model = registry.build(cfg, "m")
    bns = [layer for layer in model.layers if "bn" in layer.name]
    assert bns and all(b.momentum == 0.9 and b.epsilon == 1e-2 for b in bns)
    assert model.get_layer("head_dropout").rate == 0.3
    out = model(np.zeros((2, 12, 12, 3), np.float32))
    assert out.shape == (2, 7) and out.dtype == "float32"


def test_unknown_model_type():
    with pytest.raises(ConfigError, match="choose one of"):
        registry.build(registry.ModelConfig("vgg", 10, 32), "x")
