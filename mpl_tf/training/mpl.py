"""Meta Pseudo Labels: one step of teacher and student (MPL_SPEC section 2).

1. Teacher forward on [x_l, x_w, x_s]: L_sup + lambda(t) * L_uda.
2. Pseudo labels y^ from the teacher's strong-view logits z_s (argmax, or a
   sample with --mpl_label=sample).
3. Student forward on [x_s, x_l]: L_S = CE_eps(y^, s_u); CE_old = CE(y_l, s_l).
4. Student update with its own optimizer, then its EMA.
5. Student forward on x_l with the new weights: CE_new. The forward runs
   functionally (`stateless_call`) and its batch-norm statistics are thrown
   away, so the moving averages see each image once per step.
6. Feedback h = CE_old - CE_new (global), baseline b <- d*b + (1-d)*h,
   h~ = h - b. Positive h~ means learning y^ lowered the student's labeled
   loss.
7. Teacher loss L_sup + lambda L_uda + h~ * CE(y^, z_s): gradient descent on
   it makes a helpful label more likely. (The reference multiplies by
   CE(softmax(z), z) of the same logits, whose gradient is zero, and uses
   the opposite sign.)
"""

import tensorflow as tf

from mpl_tf import losses
from mpl_tf.training.base import TrainerModel, all_reduce_sum
from mpl_tf.training.uda import teacher_losses

PSEUDO_LABEL_MODES = ("hard", "sample")


def pseudo_labels(z_s, mode):
    """Integer pseudo labels from the teacher's strong-view logits."""
    z_s = tf.stop_gradient(tf.cast(z_s, tf.float32))
    if mode == "sample":
        return tf.random.categorical(z_s, 1, dtype=tf.int32)[:, 0]
    return tf.argmax(z_s, axis=-1, output_type=tf.int32)


class MPLModel(TrainerModel):
    """Owns teacher, student (+ EMA student), both optimizers, the baseline."""

    def __init__(self, cfg, teacher, student, teacher_optimizer,
                 student_optimizer, ema_network=None, **kwargs):
        super().__init__(cfg, deployed=student, ema_network=ema_network,
                         **kwargs)
        self.teacher = teacher
        self.student = student
        self.teacher_optimizer = teacher_optimizer
        self.student_optimizer = student_optimizer
        # Moving average of the feedback; identical on all replicas because
        # the feedback is all-reduced before it is folded in.
        self.baseline = tf.Variable(
            0.0, trainable=False, name="mpl_baseline",
            aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)

    @property
    def main_optimizer(self):
        return self.teacher_optimizer

    def networks(self):
        return {"teacher": self.teacher, "student": self.student}

    def optimizers(self):
        return [(self.teacher_optimizer, self.teacher),
                (self.student_optimizer, self.student)]

    def checkpoint_items(self):
        items = super().checkpoint_items()
        items["mpl_baseline"] = self.baseline
        return items

    def train_step(self, batch):
        cfg = self.cfg
        step = self.global_step
        x_l, y_l, x_s = batch["l_images"], batch["l_labels"], batch["u_strong"]

        with tf.GradientTape() as t_tape:
            t = teacher_losses(self.teacher, batch, cfg, step)
            labels = pseudo_labels(t["z_s"], cfg.mpl_label)
            # CE(y^, z_s) over the global unlabeled batch; h~ scales it below.
            t_mpl = losses.labeled_ce(labels, t["z_s"], t["global_u"])
        global_b, global_u = t["global_b"], t["global_u"]

        with tf.GradientTape() as s_tape:
            s_logits = self.student(tf.concat([x_s, x_l], axis=0),
                                    training=True)
            s_u, s_l = tf.split(s_logits, [tf.shape(x_s)[0],
                                           tf.shape(x_l)[0]], axis=0)
            s_loss = losses.labeled_ce(labels, s_u, global_u,
                                       cfg.label_smoothing)
        ce_old = losses.labeled_ce(y_l, tf.stop_gradient(s_l), global_b)
        s_lr = self.student_optimizer.learning_rate
        s_norm = self.apply_gradients(
            self.student_optimizer, self.student,
            s_tape.gradient(s_loss, self.student.trainable_variables))
        self.update_ema(step)

        new_logits, _ = self.student.stateless_call(
            [v.value for v in self.student.trainable_variables],
            [v.value for v in self.student.non_trainable_variables],
            x_l, training=True)
        ce_new = losses.labeled_ce(y_l, new_logits, global_b)
        ce_old, ce_new = all_reduce_sum([ce_old, ce_new])
        feedback = ce_old - ce_new
        decay = cfg.mpl_baseline_decay
        baseline = decay * self.baseline + (1.0 - decay) * feedback
        self.baseline.assign(baseline)
        advantage = tf.stop_gradient(feedback - baseline)

        t_lr = self.teacher_optimizer.learning_rate
        t_grads = t_tape.gradient(
            [t["total"], t_mpl], self.teacher.trainable_variables,
            output_gradients=[tf.ones([]), advantage])
        t_norm = self.apply_gradients(self.teacher_optimizer, self.teacher,
                                      t_grads)
        self.count_nonfinite(t_norm, s_norm)

        sup, uda, kept, s_loss = all_reduce_sum(
            [t["sup"], t["uda"], t["kept"], s_loss])
        return {"cross_entropy/student_on_u": s_loss,
                "cross_entropy/student_on_l": ce_new,
                "cross_entropy/teacher_on_u": uda,
                "cross_entropy/teacher_on_l": sup,
                "lr/student": s_lr, "lr/teacher": t_lr,
                "mpl/dot_product": feedback,
                "mpl/moving_dot_product": baseline,
                "uda/u_ratio": kept / global_u, "uda/weight": t["weight"],
                "grad_norm/teacher": t_norm, "grad_norm/student": s_norm,
                "nonfinite/skipped_steps": tf.identity(self.nonfinite_steps)}
