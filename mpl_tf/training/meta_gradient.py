"""The exact MPL meta-gradient, through the student's update (docs/design.md, section 3).

With pseudo-label targets p(phi) from the teacher, the student's gradient
g(phi) = grad_theta CE(p(phi), S(x_s; theta)) is taken inside an inner tape
while the teacher's (outer) tape records, the virtual step
theta'(phi) = theta - eta_s * g(phi) stays a tensor, and the student's
labeled loss CE(y_l, S(x_l; theta'(phi))) is computed functionally with
`stateless_call`. Differentiating that loss on the outer tape gives
d/dphi of the student's post-update labeled loss, second-order term
included.

Approximations that remain (also in the README):
- The virtual step is plain SGD with eta_s = the student's current learning
  rate, on the replica-summed gradient plus weight decay; the real update
  uses Nesterov momentum and gradient clipping.
- Batch norm runs in training mode in both student calls (batch
  statistics); the moving averages are updated from the first call only.
- Dropout draws a fresh mask in each call. The post-update call runs with
  the state the first call left (`non_trainable`), so a pass at theta with
  that state (the paired CE_old, mpl.py) draws the post-update call's mask.
"""

import dataclasses

import tensorflow as tf

from mpl_tf import losses


@dataclasses.dataclass
class VirtualStep:
    meta_loss: tf.Tensor      # CE(y_l, S(x_l; theta')), this replica's share
    student_loss: tf.Tensor   # CE(p, S(x_s; theta)), this replica's share
    s_u: tf.Tensor            # student logits on x_s at theta
    s_l: tf.Tensor            # student logits on x_l at theta (for CE_old)
    grads: list               # replica-summed student gradient + weight decay
    non_trainable: list       # batch-norm statistics after the first call


def virtual_step(trainer, targets, x_s, x_l, y_l, lr, global_u, global_b):
    """Differentiable (in `targets`) post-update labeled loss of the student.

    Call inside the teacher's tape. `targets` [mu*b, K] are the (smoothed)
    pseudo-label distributions on x_s.
    """
    student = trainer.student
    theta = [v.value for v in student.trainable_variables]
    frozen = [v.value for v in student.non_trainable_variables]
    with tf.GradientTape() as inner:
        inner.watch(theta)
        logits, new_frozen = student.stateless_call(
            theta, frozen, tf.concat([x_s, x_l], axis=0), training=True)
        s_u, s_l = tf.split(logits, [tf.shape(x_s)[0], tf.shape(x_l)[0]], 0)
        s_u = losses.as_loss_dtype(s_u)
        student_loss = tf.reduce_sum(losses.cross_entropy(targets, s_u)) / \
            tf.cast(global_u, s_u.dtype)
    grads = trainer.reduce_gradients(student, inner.gradient(student_loss,
                                                             theta))
    theta_prime = [t - tf.cast(lr, t.dtype) * tf.cast(g, t.dtype)
                   for t, g in zip(theta, grads)]
    new_logits, _ = student.stateless_call(theta_prime, new_frozen, x_l,
                                           training=True)
    meta_loss = losses.labeled_ce(y_l, new_logits, global_b)
    return VirtualStep(meta_loss, student_loss, s_u, s_l, grads, new_frozen)
