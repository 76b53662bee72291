"""--teacher_model_type: a larger MPL teacher than the student."""

import pytest
import tensorflow as tf

from mpl_tf import config, task
from mpl_tf.data import registry
from mpl_tf.errors import ConfigError


def _params(**kw):
    values = dict(dataset_name="digits_30_mpl", output_dir="/tmp/unused",
                  model_type="cnn-tiny", image_size=12)
    values.update(kw)
    return config.validate(config.defaults(**values))


def test_the_teacher_gets_its_own_network():
    p = _params(teacher_model_type="cnn-16")
    model = task.build_trainer(p, registry.load_source(p),
                               tf.distribute.get_strategy())
    tiny = task.build_trainer(_params(), registry.load_source(_params()),
                              tf.distribute.get_strategy())
    assert model.student.count_params() == tiny.student.count_params()
    assert model.teacher.count_params() > 2 * model.student.count_params()
    assert model.teacher.count_params() > tiny.teacher.count_params()


def test_an_unknown_teacher_model_type_names_its_flag():
    with pytest.raises(ConfigError, match="--teacher_model_type='wrn-99'"):
        _params(teacher_model_type="wrn-99")
