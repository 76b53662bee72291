"""mpl_tf: Meta Pseudo Labels in Keras 3 on TensorFlow 2."""

__version__ = "0.1.0"
