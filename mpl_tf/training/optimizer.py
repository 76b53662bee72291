"""SGD for gradients that the train step has already summed over replicas.

Keras' TensorFlow optimizers all-reduce gradients inside `apply`, and its
`clipnorm`/`global_clipnorm` clip each replica's gradient before that. The
reference clips the GLOBAL gradient, so our train step all-reduces, adds
weight decay, clips, and hands the result here; this optimizer therefore must
not reduce again. (Non-finite gradients need no care here: the train step
undoes a step whose gradient norm is not finite, optimizer slots included.)
"""

import keras

from mpl_tf import compat


@keras.saving.register_keras_serializable(package="mpl_tf")
class GlobalSGD(keras.optimizers.SGD):
    """keras.optimizers.SGD (Nesterov optional) without the all-reduce."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        compat.skip_optimizer_all_reduce(self)


def make_optimizer(learning_rate, optim_type, name):
    """The reference's `momentum` (Nesterov 0.9) or plain `sgd`."""
    momentum = 0.9 if optim_type == "momentum" else 0.0
    return GlobalSGD(learning_rate=learning_rate, momentum=momentum,
                     nesterov=momentum > 0, name=name)
