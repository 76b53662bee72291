"""Small building blocks shared by the networks."""

import keras
import tensorflow as tf

_FUSED_DTYPES = ("float32", "bfloat16", "float16")


@keras.saving.register_keras_serializable(package="mpl_tf")
class BatchNorm(keras.layers.BatchNormalization):
    """Keras batch norm computed by TensorFlow's fused kernel.

    Keras 3 builds batch norm out of `moments` and elementwise ops; the fused
    op is one kernel each way (oneDNN on CPU), which makes a WRN-28-2 training
    pass ~10 % faster (benchmarks/step_time.py). The semantics are Keras's: the
    moving averages take the biased batch variance. Everything the fused op
    cannot do (synchronized statistics, masks, renorm, float64, non-NHWC)
    goes through the Keras implementation, as does `fused=False`.
    """

    def __init__(self, fused=True, **kwargs):
        super().__init__(**kwargs)
        self.fused = fused

    def get_config(self):
        return {**super().get_config(), "fused": self.fused}

    def _fusable(self, inputs, mask):
        return (self.fused and mask is None and not self.synchronized
                and not self.renorm and self.center and self.scale
                and len(inputs.shape) == 4
                and self.axis in (3, -1)
                and keras.backend.standardize_dtype(inputs.dtype)
                in _FUSED_DTYPES)

    def call(self, inputs, training=None, mask=None):
        if not self._fusable(inputs, mask):
            return super().call(inputs, training=training, mask=mask)
        gamma = tf.cast(self.gamma.value, tf.float32)
        beta = tf.cast(self.beta.value, tf.float32)
        moving_mean = tf.cast(self.moving_mean.value, tf.float32)
        moving_var = tf.cast(self.moving_variance.value, tf.float32)
        if not (training and self.trainable):
            outputs, _, _ = tf.compat.v1.nn.fused_batch_norm(
                inputs, gamma, beta, mean=moving_mean, variance=moving_var,
                epsilon=self.epsilon, is_training=False)
            return tf.cast(outputs, self.compute_dtype)
        outputs, mean, var = tf.compat.v1.nn.fused_batch_norm(
            inputs, gamma, beta, epsilon=self.epsilon, is_training=True)
        # The fused op returns the Bessel-corrected variance; Keras averages
        # the biased one.
        n = tf.cast(tf.size(inputs) // tf.shape(inputs)[-1], tf.float32)
        var = var * (n - 1.0) / n
        m = self.momentum
        self.moving_mean.assign(moving_mean * m + mean * (1.0 - m))
        self.moving_variance.assign(moving_var * m + var * (1.0 - m))
        return tf.cast(outputs, self.compute_dtype)


def batch_norm(cfg, name):
    return BatchNorm(
        momentum=cfg.batch_norm_decay, epsilon=cfg.batch_norm_epsilon,
        synchronized=cfg.sync_batch_norm, name=name)


def _leaky_relu_from_output(x, slope):
    """Leaky ReLU whose gradient is read off its output, not its input.

    With a positive slope the output has the input's sign, so the backward
    pass needs only the output, which the next convolution keeps anyway; the
    input (a batch-norm output) can then be freed after the forward pass.
    That is a third of a WRN block's saved activations.
    """

    @tf.custom_gradient
    def forward(x):
        y = tf.nn.leaky_relu(x, alpha=slope)

        def grad(dy):
            return tf.raw_ops.LeakyReluGrad(gradients=dy, features=y,
                                            alpha=slope)

        return y, grad

    return forward(x)


@keras.saving.register_keras_serializable(package="mpl_tf")
class LeakyReLU(keras.layers.LeakyReLU):
    """Keras leaky ReLU that saves less memory for backprop (same values).

    `from_output=False` is Keras's own backward (kept for comparisons).
    """

    def __init__(self, from_output=True, **kwargs):
        super().__init__(**kwargs)
        self.from_output = from_output

    def get_config(self):
        return {**super().get_config(), "from_output": self.from_output}

    def call(self, inputs):
        if self.negative_slope <= 0 or not self.from_output:
            return super().call(inputs)
        return _leaky_relu_from_output(inputs, self.negative_slope)


def leaky_relu(name):
    # The reference uses leaky ReLU with slope 0.2 throughout its WRN.
    return LeakyReLU(negative_slope=0.2, name=name)


def conv(filters, kernel, stride, name):
    return keras.layers.Conv2D(
        filters, kernel, strides=stride, padding="same", use_bias=False,
        kernel_initializer="he_normal", name=name)


def normalize_input(inputs, cfg):
    """Images arrive as 0..255 floats; standardise with the data's stats."""
    variance = [s * s for s in cfg.std]
    return keras.layers.Normalization(mean=list(cfg.mean), variance=variance,
                                      name="normalize")(inputs)


def classifier_head(x, cfg):
    """GAP -> dropout -> dense; logits always float32 (bfloat16-safe)."""
    x = keras.layers.GlobalAveragePooling2D(name="head_pool")(x)
    x = keras.layers.Dropout(cfg.dense_dropout_rate, name="head_dropout")(x)
    x = keras.layers.Dense(cfg.num_classes, name="head_dense")(x)
    return keras.layers.Activation("linear", dtype="float32", name="logits")(x)
