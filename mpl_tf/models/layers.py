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
        self._update_moving_stats(inputs, mean, var)
        return tf.cast(outputs, self.compute_dtype)

    def _update_moving_stats(self, inputs, mean, var):
        # The fused op returns the Bessel-corrected variance; Keras averages
        # the biased one.
        n = tf.cast(tf.size(inputs) // tf.shape(inputs)[-1], tf.float32)
        var = var * (n - 1.0) / n
        m = self.momentum
        self.moving_mean.assign(
            tf.cast(self.moving_mean.value, tf.float32) * m + mean * (1.0 - m))
        self.moving_variance.assign(
            tf.cast(self.moving_variance.value, tf.float32) * m
            + var * (1.0 - m))


def _recover_input(a, scale, shift, slope):
    """x = y * scale + shift with y = leaky_relu^-1(a).

    With 0 < slope <= 1, y = min(a, a / slope) (a / slope is the more
    negative one exactly when a < 0): four elementwise kernels, as fast as
    the XLA-fused `where` form and without XLA's compiler in the process
    (~50 MB of resident memory)."""
    if slope > 1:
        return tf.maximum(a, a / slope) * scale + shift
    return tf.minimum(a, a / slope) * scale + shift


def _bn_leaky_relu_from_output(x, gamma, beta, epsilon, slope):
    """Training-mode batch norm and leaky ReLU whose backward needs only the
    output a (as in-place activated batch norm, Rota Bulo et al. 2018).

    The backward recovers the batch-norm output y from a (leaky ReLU keeps
    the sign) and the input from y, x = (y - beta) * sigma / gamma + mu,
    then runs TensorFlow's fused batch-norm gradient on it, so neither x
    nor y is kept for backprop: of a WRN block's four saved activations
    (x, a1, h1, a2) two remain. Every op of the backward has a gradient, so
    second derivatives (the exact meta-gradient) flow through it. Returns
    (a, batch mean, Bessel-corrected variance).

    Recovering x divides by gamma: in float32 its error is about
    |beta| * sigma * 6e-8 / |gamma|, so a channel whose scale has shrunk to
    ~1e-5 of its shift gets a visibly noisy gradient (gamma is initialised
    at 1 and not weight-decayed, so it rarely gets there).
    """

    @tf.custom_gradient
    def forward(x, gamma, beta):
        empty = tf.constant([], tf.float32)
        y, mean, var, saved_1, saved_2, saved_3 = tf.raw_ops.FusedBatchNormV3(
            x=x, scale=gamma, offset=beta, mean=empty, variance=empty,
            epsilon=epsilon, is_training=True)
        a = tf.nn.leaky_relu(y, alpha=slope)
        n = tf.cast(tf.size(x) // tf.shape(x)[-1], tf.float32)
        # The forward normalised with the biased batch variance.
        sigma = tf.sqrt(var * (n - 1.0) / n + epsilon)

        def grad(da, *_):
            # Not before da exists: the executor would otherwise recover x
            # of every layer as soon as the forward ends, holding them all
            # at once (more memory than keeping x).
            with tf.control_dependencies([da]):
                a_ = tf.identity(a)
            dy = tf.raw_ops.LeakyReluGrad(gradients=da, features=a_,
                                          alpha=slope)
            scale = sigma / gamma
            x_rec = _recover_input(tf.cast(a_, tf.float32), scale,
                                   mean - beta * scale, slope)
            dx, d_gamma, d_beta, _, _ = tf.raw_ops.FusedBatchNormGradV3(
                y_backprop=dy, x=tf.cast(x_rec, x.dtype), scale=gamma,
                reserve_space_1=saved_1, reserve_space_2=saved_2,
                reserve_space_3=saved_3, epsilon=epsilon, is_training=True)
            return dx, d_gamma, d_beta

        return (a, tf.stop_gradient(mean), tf.stop_gradient(var)), grad

    return forward(x, gamma, beta)


@keras.saving.register_keras_serializable(package="mpl_tf")
class BatchNormLeakyReLU(BatchNorm):
    """Batch norm followed by leaky ReLU, one layer so that training keeps
    only its output for backprop (see `_bn_leaky_relu_from_output`): the
    same values as BatchNorm then LeakyReLU, about half a WRN's activation
    memory. `recompute=False`, or anything the fused kernel cannot do, runs
    the two separately."""

    def __init__(self, negative_slope=0.2, recompute=True, **kwargs):
        super().__init__(**kwargs)
        self.negative_slope = negative_slope
        self.recompute = recompute

    def get_config(self):
        return {**super().get_config(), "negative_slope": self.negative_slope,
                "recompute": self.recompute}

    def call(self, inputs, training=None, mask=None):
        # y is recovered from a only if leaky ReLU keeps the sign (slope > 0).
        if not (self.recompute and training and self.trainable
                and self.negative_slope > 0 and self._fusable(inputs, mask)):
            outputs = super().call(inputs, training=training, mask=mask)
            return _leaky_relu_from_output(outputs, self.negative_slope)
        outputs, mean, var = _bn_leaky_relu_from_output(
            inputs, tf.cast(self.gamma.value, tf.float32),
            tf.cast(self.beta.value, tf.float32), self.epsilon,
            self.negative_slope)
        self._update_moving_stats(inputs, mean, var)
        return tf.cast(outputs, self.compute_dtype)


def batch_norm_leaky_relu(cfg, name):
    # The reference uses leaky ReLU with slope 0.2 throughout its WRN.
    return BatchNormLeakyReLU(
        negative_slope=0.2, momentum=cfg.batch_norm_decay,
        epsilon=cfg.batch_norm_epsilon, synchronized=cfg.sync_batch_norm,
        name=name)


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
