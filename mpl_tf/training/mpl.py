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

import collections

import tensorflow as tf

from mpl_tf import losses
from mpl_tf.training import meta_gradient
from mpl_tf.training.base import TrainerModel, all_reduce_sum
from mpl_tf.training.uda import batch_sizes as uda_batch_sizes
from mpl_tf.training.uda import teacher_images, teacher_losses

PSEUDO_LABEL_MODES = ("hard", "sample")

# What the student's half of a Taylor step hands back to the teacher's half.
StudentUpdate = collections.namedtuple(
    "StudentUpdate", "loss ce_new feedback baseline advantage lr grad_norm")


def call_discarding_state(network, images):
    """`network(images, training=True)` at its current weights, with its
    batch-norm and dropout-seed updates thrown away (`stateless_call`)."""
    logits, _ = network.stateless_call(
        [v.value for v in network.trainable_variables],
        [v.value for v in network.non_trainable_variables],
        images, training=True)
    return logits


def pseudo_labels(z_s, mode, seed=None):
    """Integer pseudo labels from the teacher's strong-view logits.

    `sample` draws statelessly from `seed` (e.g. (run seed, step, replica)),
    so a resumed run draws the same labels.
    """
    z_s = tf.stop_gradient(tf.cast(z_s, tf.float32))
    if mode == "sample":
        return tf.random.stateless_categorical(z_s, 1, seed,
                                               dtype=tf.int32)[:, 0]
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
        if self.cfg.mpl_feedback == "exact":
            return self._exact_step(batch)
        return self._taylor_step(batch)

    def _sample_seed(self, step):
        replica = tf.distribute.get_replica_context().replica_id_in_sync_group
        return tf.stack([tf.cast(self.cfg.seed, tf.int64),
                         tf.cast(step, tf.int64) * 1024 +
                         tf.cast(replica, tf.int64)])

    def _feedback(self, ce_old, ce_new):
        """Global h = CE_old - CE_new, its baseline, and h - baseline."""
        ce_old, ce_new = all_reduce_sum([ce_old, ce_new])
        feedback = ce_old - ce_new
        decay = self.cfg.mpl_baseline_decay
        baseline = decay * self.baseline + (1.0 - decay) * feedback
        self.baseline.assign(baseline)
        return ce_new, feedback, baseline, tf.stop_gradient(feedback - baseline)

    def _taylor_step(self, batch):
        cfg = self.cfg
        step = self.global_step
        seed = self._sample_seed(step)
        if cfg.mpl_low_memory:
            # Label with a tape-free functional pass (its batch-norm and
            # dropout-seed updates dropped), so the teacher's activations are
            # not held while the student trains; the taped pass after the
            # student's update sees the same weights, batch, batch statistics
            # and dropout seed, so it gives the same logits and labels.
            logits = call_discarding_state(self.teacher,
                                           teacher_images(batch))
            z_s = logits[-tf.shape(batch["u_strong"])[0]:]
            labels = pseudo_labels(z_s, cfg.mpl_label, seed)
            student = self._student_update(batch, labels, step)
            # Graph execution follows data, not program order: without this
            # the taped pass could run beside the student's step.
            with tf.control_dependencies([student.advantage]):
                batch = {k: tf.identity(v) for k, v in batch.items()}
            with tf.GradientTape() as t_tape:
                t = teacher_losses(self.teacher, batch, cfg, step)
                t_mpl = losses.labeled_ce(labels, t["z_s"], t["global_u"])
        else:
            with tf.GradientTape() as t_tape:
                t = teacher_losses(self.teacher, batch, cfg, step)
                labels = pseudo_labels(t["z_s"], cfg.mpl_label, seed)
                # CE(y^, z_s) over the global unlabeled batch; h~ scales it.
                t_mpl = losses.labeled_ce(labels, t["z_s"], t["global_u"])
            student = self._student_update(batch, labels, step)

        t_lr = self.teacher_optimizer.learning_rate
        t_grads = t_tape.gradient(
            [t["total"], t_mpl], self.teacher.trainable_variables,
            output_gradients=[tf.ones([]), student.advantage])
        t_norm = self.apply_gradients(self.teacher_optimizer, self.teacher,
                                      t_grads)
        self.count_nonfinite(t_norm, student.grad_norm)
        return self._step_metrics(t, student.loss, student.ce_new,
                                  student.feedback, student.baseline,
                                  student.lr, t_lr, t_norm, student.grad_norm)

    def _student_update(self, batch, labels, step):
        """Student step on the pseudo labels, then the feedback h."""
        cfg = self.cfg
        x_l, y_l, x_s = batch["l_images"], batch["l_labels"], batch["u_strong"]
        global_b, global_u = uda_batch_sizes(batch)
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

        # CE_new with the updated weights; its batch-norm statistics are
        # dropped so the moving averages see each image once per step.
        new_logits = call_discarding_state(self.student, x_l)
        ce_new, feedback, baseline, advantage = self._feedback(
            ce_old, losses.labeled_ce(y_l, new_logits, global_b))
        return StudentUpdate(s_loss, ce_new, feedback, baseline, advantage,
                             s_lr, s_norm)

    def _exact_step(self, batch):
        """Teacher gradient through the student's virtual update.

        soft labels: the pathwise meta-gradient d CE(y_l, S(x_l; theta'))/d phi.
        hard/sample labels: an argmax or a draw has no pathwise gradient
        (it is exactly zero), so the teacher gets the score-function term
        h~ * grad CE(y^, z_s), with h = CE_old - CE(y_l, S(x_l; theta')),
        the labeled loss after the exact virtual step.
        """
        cfg = self.cfg
        step = self.global_step
        x_l, y_l, x_s = batch["l_images"], batch["l_labels"], batch["u_strong"]
        soft = cfg.mpl_label == "soft"
        s_lr = self.student_optimizer.learning_rate

        with tf.GradientTape() as t_tape:
            t = teacher_losses(self.teacher, batch, cfg, step)
            z_s = losses.as_loss_dtype(t["z_s"])
            if soft:
                targets = tf.nn.softmax(z_s, axis=-1)
            else:
                labels = pseudo_labels(z_s, cfg.mpl_label, self._sample_seed(step))
                targets = tf.one_hot(labels, tf.shape(z_s)[-1], dtype=z_s.dtype)
                t_mpl = losses.labeled_ce(labels, z_s, t["global_u"])
            virtual = meta_gradient.virtual_step(
                self, losses.smooth(targets, cfg.label_smoothing), x_s, x_l,
                y_l, s_lr, t["global_u"], t["global_b"])
        global_b = t["global_b"]

        ce_old = losses.labeled_ce(y_l, tf.stop_gradient(virtual.s_l),
                                   global_b)
        ce_new, feedback, baseline, advantage = self._feedback(
            ce_old, tf.stop_gradient(virtual.meta_loss))
        if soft:
            targets_, weights = [t["total"], virtual.meta_loss], [1.0, 1.0]
        else:
            targets_, weights = [t["total"], t_mpl], [1.0, advantage]
        t_grads = t_tape.gradient(
            targets_, self.teacher.trainable_variables,
            output_gradients=[tf.cast(w, tf.float32) * tf.ones([])
                              for w in weights])

        # The real student update reuses the virtual step's gradient (same
        # batch, same labels) with the student's own optimizer.
        s_grads = [tf.stop_gradient(g) for g in virtual.grads]
        s_norm = self.clip_and_apply(self.student_optimizer, self.student,
                                     s_grads)
        for var, value in zip(self.student.non_trainable_variables,
                              virtual.non_trainable):
            var.assign(value)
        self.update_ema(step)

        t_lr = self.teacher_optimizer.learning_rate
        t_norm = self.apply_gradients(self.teacher_optimizer, self.teacher,
                                      t_grads)
        self.count_nonfinite(t_norm, s_norm)
        return self._step_metrics(t, virtual.student_loss, ce_new, feedback,
                             baseline, s_lr, t_lr, t_norm, s_norm)

    def _step_metrics(self, t, s_loss, ce_new, feedback, baseline, s_lr, t_lr,
                 t_norm, s_norm):
        sup, uda, kept, s_loss = all_reduce_sum(
            [t["sup"], t["uda"], t["kept"], tf.cast(s_loss, tf.float32)])
        return {"cross_entropy/student_on_u": s_loss,
                "cross_entropy/student_on_l": ce_new,
                "cross_entropy/teacher_on_u": uda,
                "cross_entropy/teacher_on_l": sup,
                "lr/student": s_lr, "lr/teacher": t_lr,
                "mpl/dot_product": feedback,
                "mpl/moving_dot_product": baseline,
                "uda/u_ratio": kept / t["global_u"], "uda/weight": t["weight"],
                "grad_norm/teacher": t_norm, "grad_norm/student": s_norm,
                "nonfinite/skipped_steps": tf.identity(self.nonfinite_steps)}
