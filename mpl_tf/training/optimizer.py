"""SGD for gradients that the train step has already summed over replicas.

Keras' TensorFlow optimizers all-reduce gradients inside `apply`, and its
`clipnorm`/`global_clipnorm` clip each replica's gradient before that. The
reference clips the GLOBAL gradient, so our train step all-reduces, adds
weight decay, clips, and hands the result here; this optimizer therefore must
not reduce again.

It also refuses non-finite gradients: a variable whose gradient has a NaN or
an Inf keeps its value and its momentum (the train step poisons every
gradient of a step whose global norm is not finite, so such a step updates
nothing). The iteration count still advances, which keeps the learning-rate
schedules aligned with the global step.
"""

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="mpl_tf")
class GlobalSGD(keras.optimizers.SGD):
    """keras.optimizers.SGD (Nesterov optional) without the all-reduce."""

    def _all_reduce_sum_gradients(self, grads_and_vars):
        # Already summed over replicas by the train step: do not sum again.
        return list(grads_and_vars)

    def update_step(self, gradient, variable, learning_rate):
        lr = tf.cast(learning_rate, variable.dtype)
        grad = tf.cast(gradient, variable.dtype)
        finite = tf.reduce_all(tf.math.is_finite(grad))
        grad = tf.where(finite, grad, tf.zeros_like(grad))
        if self.momentum == 0:
            step = -lr * grad
        else:
            velocity = self.momentums[self._get_variable_index(variable)]
            mom = tf.cast(self.momentum, variable.dtype)
            new_velocity = mom * velocity - lr * grad
            self.assign(velocity, tf.where(finite, new_velocity, velocity))
            step = (mom * new_velocity - lr * grad if self.nesterov
                    else new_velocity)
        self.assign_add(variable, tf.where(finite, step, tf.zeros_like(step)))


def make_optimizer(learning_rate, optim_type, name):
    """The reference's `momentum` (Nesterov 0.9) or plain `sgd`."""
    momentum = 0.9 if optim_type == "momentum" else 0.0
    return GlobalSGD(learning_rate=learning_rate, momentum=momentum,
                     nesterov=momentum > 0, name=name)
