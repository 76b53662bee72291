"""Networks for teacher and student. `build(model_type, ...)` is the entry."""

from mpl_tf.models.registry import MODEL_TYPES, build  # noqa: F401
