"""Training-mode forward passes that keep only segment boundaries for
backprop and recompute each segment's activations in the backward pass
(gradient checkpointing), without changing the network or its weights.

A segment is a Keras sub-model between two tensors of the functional
network (same layers, same variables). Its forward runs once as usual
(batch-norm statistics and dropout seeds update once); the backward waits
for the segment's output gradient, reruns the segment on the saved input
with its state updates discarded, and differentiates that. The kernels are
deterministic, so the recomputed activations, and the gradients, are the
same bits (tests/test_low_memory.py).
"""

import keras
import tensorflow as tf

# WRN-28-k: the outputs of its three groups of blocks. Each is the only
# tensor that crosses from one group into the next.
WRN_GROUP_ENDS = ("block4_add", "block8_add", "block12_add")
# Finer cuts: the first group (the widest activations, half of the
# network's) also split after its second block.
WRN_FINE_ENDS = ("block2_add",) + WRN_GROUP_ENDS


def is_wrn(network):
    """Whether `network` has the WRN-28-k block outputs cut at below."""
    names = {layer.name for layer in network.layers}
    return set(WRN_FINE_ENDS) <= names


def mpl_calls(teacher, student, low_memory, recompute_teacher=True):
    """(teacher call, student call) for an MPL step: a SegmentedCall where a
    WRN-28-k network recomputes activations in backprop, None where it runs
    as usual (other networks always do).

    Default (`recompute_teacher`): the teacher's first group, about half of
    its activations, which otherwise stay alive through the student's whole
    update. `low_memory`: the teacher's whole body in four segments (its
    backward holds one at a time) and the student's first group.
    """
    t_wrn, s_wrn = is_wrn(teacher), is_wrn(student)
    if low_memory:
        return (SegmentedCall(teacher, WRN_FINE_ENDS, 4) if t_wrn else None,
                SegmentedCall(student, WRN_GROUP_ENDS, 1) if s_wrn else None)
    if recompute_teacher and t_wrn:
        return SegmentedCall(teacher, WRN_GROUP_ENDS[:1], 1), None
    return None, None


class SegmentedCall:
    """`network(images, training=True)` with the first `recomputed` of its
    segments (split at the layers named `ends`) recomputed in backprop; the
    rest (at least the head, whose dropout mask must not be redrawn) runs
    as usual."""

    def __init__(self, network, ends, recomputed):
        tensors = ([network.inputs[0]]
                   + [network.get_layer(name).output for name in ends]
                   + [network.outputs[0]])
        self.segments = [keras.Model(a, b, name=f"{network.name}_part{i}")
                         for i, (a, b) in enumerate(zip(tensors, tensors[1:]))]
        if not 0 <= recomputed < len(self.segments):
            raise ValueError(f"recomputed={recomputed}: the network has "
                             f"{len(self.segments)} segments; the last one "
                             "is never recomputed")
        self.recomputed = recomputed

    def __call__(self, images, training=True):
        x = images
        for i, segment in enumerate(self.segments):
            if training and i < self.recomputed:
                x = _recomputed(segment, x)
            else:
                x = segment(x, training=training)
        return x


def _recomputed(segment, x):
    @tf.custom_gradient
    def forward(x):
        y = segment(x, training=True)

        def grad(dy, variables=None):
            # Not before dy exists: the executor would otherwise rerun the
            # segment right after the forward, holding its activations.
            with tf.control_dependencies([dy]):
                x_again = tf.identity(x)
            variables = list(variables or [])
            with tf.GradientTape() as tape:
                tape.watch(x_again)
                # Batch-norm statistics (and any other state) were updated
                # by the forward; the rerun's updates are dropped.
                with keras.StatelessScope():
                    y_again = segment(x_again, training=True)
            grads = tape.gradient(y_again, [x_again] + variables,
                                  output_gradients=dy)
            return grads[0], grads[1:]

        return y, grad

    return forward(x)
