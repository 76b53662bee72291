"""mpl_tf: Meta Pseudo Labels in Keras 3 on TensorFlow 2."""

import os

# TensorFlow turns its oneDNN CPU kernels on by default only on some Intel
# CPUs; elsewhere (this project's AMD EPYC CI machines) the Eigen kernels make
# the WRN-28-2 MPL step ~1.6x slower (benchmarks/step_time.py). The switch
# is read when TensorFlow is imported, so it is set here, before that; an
# explicit TF_ENABLE_ONEDNN_OPTS=0 in the environment still wins.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

# TensorFlow's C++ logger prints CUDA probes ("failed call to cuInit" where
# there is no GPU driver), oneDNN and CPU-feature notices and saver timings:
# noise on a training console. Fatal messages only, unless the user set the
# level; like the switch above it must be set before TensorFlow is imported.
# The user's own value is kept for the command line's --verbosity
# (mpl_tf/console.py), which may still change our default.
USER_TF_CPP_MIN_LOG_LEVEL = os.environ.get("TF_CPP_MIN_LOG_LEVEL")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

__version__ = "0.1.0"

# The Keras API, imported on first use: `import mpl_tf` itself stays light
# (and must not import TensorFlow, for the switch above to take effect).
_KERAS_API = ("MetaPseudoLabels", "ReducedMetaPseudoLabels", "UDA",
              "Supervised", "reference_optimizer")


def __getattr__(name):
    import importlib  # pylint: disable=import-outside-toplevel

    if name in _KERAS_API:
        return getattr(importlib.import_module("mpl_tf.keras_api"), name)
    if name == "WarmupDecay":
        return importlib.import_module("mpl_tf.schedules").WarmupDecay
    if name in ("callbacks", "data", "models", "training"):
        return importlib.import_module(f"mpl_tf.{name}")
    raise AttributeError(f"module 'mpl_tf' has no attribute {name!r}")
