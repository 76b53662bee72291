"""mpl_tf: Meta Pseudo Labels in Keras 3 on TensorFlow 2.

Importing it changes nothing in the environment and does not import
TensorFlow; the Keras API below is imported on first use. (The command line
sets its TensorFlow defaults itself: `mpl_tf.console.tensorflow_defaults`.)
"""

__version__ = "0.1.0"

_KERAS_API = ("MetaPseudoLabels", "ReducedMetaPseudoLabels", "UDA",
              "Supervised", "reference_optimizer")


def __getattr__(name):
    import importlib

    if name in _KERAS_API:
        return getattr(importlib.import_module("mpl_tf.keras_api"), name)
    if name == "WarmupDecay":
        return importlib.import_module("mpl_tf.schedules").WarmupDecay
    if name in ("callbacks", "data", "models", "training"):
        return importlib.import_module(f"mpl_tf.{name}")
    raise AttributeError(f"module 'mpl_tf' has no attribute {name!r}")
