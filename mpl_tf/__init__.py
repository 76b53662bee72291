"""mpl_tf: Meta Pseudo Labels in Keras 3 on TensorFlow 2."""

import os

# TensorFlow turns its oneDNN CPU kernels on by default only on some Intel
# CPUs; elsewhere (this project's AMD EPYC CI machines) the Eigen kernels make
# the WRN-28-2 MPL step ~1.6x slower (benchmarks/step_time.py). The switch
# is read when TensorFlow is imported, so it is set here, before that; an
# explicit TF_ENABLE_ONEDNN_OPTS=0 in the environment still wins.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

__version__ = "0.1.0"
