"""Meta Pseudo Labels: one step of teacher and student (docs/design.md, section 1).

1. Teacher forward on [x_l, x_w, x_s]: L_sup + lambda(t) * L_uda.
2. Pseudo labels y^ from the teacher's strong-view logits z_s (argmax, or a
   sample with --mpl_label=sample); with --mpl_label_view=weak from its
   weak-view logits z_w instead (z below is whichever labels).
3. Student forward on [x_s, x_l]: L_S = CE_eps(y^, s_u). Student update with
   its own optimizer, then its EMA.
4. The feedback h = CE_old - CE_new: the student's labeled loss on x_l before
   and after its update. By default the two are measured as a pair: two
   functional passes on x_l alone, one at the old weights and one at the new,
   with the same batch-norm statistics (x_l's) and the same dropout mask, so
   h is exactly 0 when the student does not move. (--mpl_feedback_pairing=
   reference takes CE_old from the training pass of step 3, as the published
   code does, which puts batch-norm and dropout noise into h.)
5. h is summed over replicas, baseline b <- d*b + (1-d)*h, h~ = h - b.
   Positive h~ means learning y^ lowered the student's labeled loss.
6. Teacher loss L_sup + lambda L_uda + h~ * CE(y^, z): gradient descent on
   it makes a helpful label more likely. (The reference multiplies by
   CE(softmax(z), z) of the same logits, whose gradient is zero, and uses
   the opposite sign.)

The functional passes (`stateless_call`) throw their batch-norm and
dropout-seed updates away, so the moving averages see each image once per
step. With WRN networks some activations are recomputed in backprop instead
of held from step 1 to step 6 (training/recompute.py; the same numbers).
"""

import collections

import tensorflow as tf

from mpl_tf import losses
from mpl_tf.training import meta_gradient, recompute
from mpl_tf.training.base import (TrainerModel, all_reduce_sum,
                                  global_accuracy)
from mpl_tf.training.uda import batch_sizes as uda_batch_sizes
from mpl_tf.training.uda import (out_of_class_metrics, split_teacher_logits,
                                 teacher_images, teacher_losses, uda_metrics)

# The feedback of one step, all global: the student's labeled loss before
# and after its update, h = before - after, the new baseline, h - baseline.
Feedback = collections.namedtuple(
    "Feedback", "ce_old ce_new value baseline advantage")

# The student's half of a Taylor step: its loss on the pseudo labels, its
# learning rate and gradient norm, the Feedback, and its logits on x_s.
StudentStep = collections.namedtuple(
    "StudentStep", "loss lr grad_norm feedback s_u")


def call_discarding_state(network, images, non_trainable=None):
    """`network(images, training=True)` at its current weights, with its
    batch-norm and dropout-seed updates thrown away (`stateless_call`).

    `non_trainable`: values to run with instead of the network's current
    ones (the same dropout seed state gives the same dropout mask).
    """
    if non_trainable is None:
        non_trainable = [v.value for v in network.non_trainable_variables]
    logits, _ = network.stateless_call(
        [v.value for v in network.trainable_variables], non_trainable,
        images, training=True)
    return logits


def pseudo_labels(z_s, mode, seed=None):
    """Integer pseudo labels from the teacher's logits on the labeling view.

    `hard`: the argmax. `sample`: a draw, stateless from `seed` (e.g. (run
    seed, step, replica)), so a resumed run draws the same labels.
    """
    z_s = tf.stop_gradient(losses.as_loss_dtype(z_s))
    if mode == "sample":
        return tf.random.stateless_categorical(z_s, 1, seed,
                                               dtype=tf.int32)[:, 0]
    if mode == "hard":
        return tf.argmax(z_s, axis=-1, output_type=tf.int32)
    raise ValueError(f"pseudo-label mode {mode!r}: expected 'hard' or "
                     "'sample' (soft labels need --mpl_feedback=exact)")


def label_logits(t, view):
    """The teacher's logits that label the student's images: on the strong
    view (`z_s`, the reference) or on the weak view (`z_w`)."""
    if view not in ("strong", "weak"):
        raise ValueError(f"mpl_label_view={view!r}: expected 'strong' or "
                         "'weak'")
    return t["z_s"] if view == "strong" else t["z_w"]


def _checks(t, t_norm, s_loss, s_norm, feedback):
    """What an MPL step must find finite to be kept (nonfinite.CHECKS)."""
    return {"teacher loss": t["total"], "teacher gradient": t_norm,
            "student loss": s_loss, "student gradient": s_norm,
            "feedback": feedback}


def label_weights(z_w, cfg):
    """1.0 for the unlabeled images whose pseudo labels count, 0.0 for the
    others: the teacher's confidence on the weak view (max of UDA's target)
    must reach --mpl_label_threshold. None when every image counts."""
    if not cfg.mpl_label_threshold:
        return None
    target = tf.nn.softmax(tf.cast(tf.stop_gradient(z_w), tf.float32)
                           / cfg.uda_temp, -1)
    return tf.cast(tf.reduce_max(target, -1) >= cfg.mpl_label_threshold,
                   tf.float32)


def _loss_dtype(network):
    return "float64" if network.compute_dtype == "float64" else "float32"


class MPLModel(TrainerModel):
    """Owns teacher, student (+ EMA student), both optimizers, the baseline."""

    HAS_FEEDBACK = True

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
            dtype=_loss_dtype(student),
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

    def step_state(self):
        return super().step_state() + [self.baseline]

    def teacher_losses(self, batch, step, teacher=None):
        """The teacher's forward and losses (a dict; see uda.teacher_losses);
        Reduced MPL's teacher overrides it. `teacher`: a callable standing in
        for the network's training call (see `_recomputing_calls`)."""
        return teacher_losses(teacher or self.teacher, batch, self.cfg, step)

    def _recomputing_calls(self):
        """(teacher, student) training calls that recompute activations in
        backprop on WRN networks (recompute.mpl_calls), None for a network
        called as usual: the same numbers, less memory held at once."""
        if not hasattr(self, "_recomputing"):
            # Plain attribute: the segments share the networks' layers and
            # must not be tracked as the trainer's own.
            object.__setattr__(self, "_recomputing", recompute.mpl_calls(
                self.teacher, self.student, self.cfg.mpl_low_memory,
                self.cfg.mpl_recompute_teacher))
        return self._recomputing

    def compute_step(self, batch):
        if self.cfg.mpl_feedback == "exact":
            return self._exact_step(batch)
        return self._taylor_step(batch)

    @property
    def _paired(self):
        return self.cfg.mpl_feedback_pairing == "paired"

    def _sample_seed(self, step):
        replica = tf.distribute.get_replica_context().replica_id_in_sync_group
        return tf.stack([tf.cast(self.cfg.seed, tf.int64),
                         tf.cast(step, tf.int64) * 1024 +
                         tf.cast(replica, tf.int64)])

    def _feedback(self, ce_old, ce_new):
        """Global h = CE_old - CE_new, its baseline, and h - baseline."""
        ce_old, ce_new = all_reduce_sum([ce_old, ce_new])
        value = ce_old - ce_new
        decay = tf.constant(self.cfg.mpl_baseline_decay, value.dtype)
        baseline = (decay * tf.cast(self.baseline, value.dtype)
                    + (1.0 - decay) * value)
        self.baseline.assign(tf.cast(baseline, self.baseline.dtype))
        return Feedback(ce_old, ce_new, value, baseline,
                        tf.stop_gradient(value - baseline))

    def _teacher_pass(self, batch, seed, labels=None, teacher=None):
        """Taped teacher forward: its losses, the pseudo labels (unless
        given) and the MPL term CE(y^, z) over the global unlabeled batch
        (the images that count, `label_weights`), which h~ scales."""
        with tf.GradientTape() as tape:
            t = self.teacher_losses(batch, self.global_step, teacher)
            z = label_logits(t, self.cfg.mpl_label_view)
            if labels is None:
                labels = pseudo_labels(z, self.cfg.mpl_label, seed)
            t["label_weights"] = label_weights(t["z_w"], self.cfg)
            t_mpl = losses.labeled_ce(labels, z, t["global_u"],
                                      weights=t["label_weights"])
        return tape, t, labels, t_mpl

    def _taylor_step(self, batch):
        cfg = self.cfg
        step = self.global_step
        seed = self._sample_seed(step)
        teacher_call, student_call = self._recomputing_calls()
        if cfg.mpl_low_memory and teacher_call is None:
            # A teacher without recomputable segments: label with a tape-free
            # functional pass (its batch-norm and dropout-seed updates
            # dropped), so the teacher's activations are not held while the
            # student trains; the taped pass after the student's update sees
            # the same weights, batch, batch statistics and dropout seed, so
            # it gives the same logits and labels.
            logits = call_discarding_state(self.teacher,
                                           teacher_images(batch))
            _, z_w, z_s = split_teacher_logits(logits, batch)
            z = label_logits({"z_w": z_w, "z_s": z_s}, cfg.mpl_label_view)
            labels = pseudo_labels(z, cfg.mpl_label, seed)
            student = self._student_update(batch, labels, step,
                                           student_call,
                                           label_weights(z_w, cfg))
            # Graph execution follows data, not program order: without this
            # the taped pass could run beside the student's step.
            with tf.control_dependencies([student.feedback.advantage]):
                batch = {k: tf.identity(v) for k, v in batch.items()}
            t_tape, t, _, t_mpl = self._teacher_pass(batch, seed, labels)
        else:
            t_tape, t, labels, t_mpl = self._teacher_pass(batch, seed,
                                                          teacher=teacher_call)
            student = self._student_update(batch, labels, step, student_call,
                                           t["label_weights"])
        fb = student.feedback

        t_lr = self.teacher_optimizer.learning_rate
        t_grads = t_tape.gradient(
            [t["total"], t_mpl], self.teacher.trainable_variables,
            output_gradients=[tf.ones_like(t["total"]),
                              tf.cast(fb.advantage, t_mpl.dtype)])
        t_norm = self.apply_gradients(self.teacher_optimizer, self.teacher,
                                      t_grads)
        metrics = self._step_metrics(batch, t, labels, student, t_lr, t_norm)
        return metrics, _checks(t, t_norm, student.loss, student.grad_norm,
                                fb.value)

    def _student_update(self, batch, labels, step, student_call=None,
                        weights=None):
        """Student step on the pseudo labels (those with weight 1 when
        `weights` is given), then the feedback h.

        `student_call`: a callable standing in for the student's training
        call. -> StudentStep
        """
        cfg = self.cfg
        x_l, y_l, x_s = batch["l_images"], batch["l_labels"], batch["u_strong"]
        global_b, global_u = uda_batch_sizes(batch)
        with tf.GradientTape() as s_tape:
            s_logits = (student_call or self.student)(
                tf.concat([x_s, x_l], axis=0), training=True)
            s_u, s_l = tf.split(s_logits, [tf.shape(x_s)[0],
                                           tf.shape(x_l)[0]], axis=0)
            s_loss = losses.labeled_ce(labels, s_u, global_u,
                                       cfg.label_smoothing, weights)
        s_grads = s_tape.gradient(s_loss, self.student.trainable_variables)
        if self._paired:
            # One set of batch-norm and dropout-seed values for both
            # measurements: the same mask at the old and the new weights.
            frozen = [v.value for v in self.student.non_trainable_variables]
            ce_old = losses.labeled_ce(
                y_l, call_discarding_state(self.student, x_l, frozen),
                global_b)
        else:
            frozen = None
            ce_old = losses.labeled_ce(y_l, tf.stop_gradient(s_l), global_b)
        s_lr = self.student_optimizer.learning_rate
        s_norm = self.apply_gradients(self.student_optimizer, self.student,
                                      s_grads)
        self.update_ema(step)
        ce_new = losses.labeled_ce(
            y_l, call_discarding_state(self.student, x_l, frozen), global_b)
        return StudentStep(s_loss, s_lr, s_norm,
                           self._feedback(ce_old, ce_new), s_u)

    def _exact_step(self, batch):
        """Teacher gradient through the student's virtual update.

        soft labels: the pathwise meta-gradient d CE(y_l, S(x_l; theta'))/d phi.
        hard/sample labels: an argmax or a draw has no pathwise gradient
        (it is exactly zero), so the teacher gets the score-function term
        h~ * grad CE(y^, z), with h = CE_old - CE(y_l, S(x_l; theta')),
        the labeled loss after the exact virtual step.
        """
        cfg = self.cfg
        step = self.global_step
        x_l, y_l, x_s = batch["l_images"], batch["l_labels"], batch["u_strong"]
        soft = cfg.mpl_label == "soft"
        s_lr = self.student_optimizer.learning_rate

        teacher_call, _ = self._recomputing_calls()
        with tf.GradientTape() as t_tape:
            t = self.teacher_losses(batch, step, teacher_call)
            z = losses.as_loss_dtype(label_logits(t, cfg.mpl_label_view))
            if soft:
                targets = tf.nn.softmax(z, axis=-1)
                labels = tf.argmax(z, -1, output_type=tf.int32)
            else:
                labels = pseudo_labels(z, cfg.mpl_label,
                                       self._sample_seed(step))
                targets = tf.one_hot(labels, tf.shape(z)[-1], dtype=z.dtype)
                t_mpl = losses.labeled_ce(labels, z, t["global_u"])
            virtual = meta_gradient.virtual_step(
                self, losses.smooth(targets, cfg.label_smoothing), x_s, x_l,
                y_l, s_lr, t["global_u"], t["global_b"])

        if self._paired:
            # At theta, with the state the meta-loss's pass ran with (same
            # batch-norm mode, same dropout mask).
            s_l = call_discarding_state(self.student, x_l,
                                        virtual.non_trainable)
        else:
            s_l = tf.stop_gradient(virtual.s_l)
        fb = self._feedback(losses.labeled_ce(y_l, s_l, t["global_b"]),
                            tf.stop_gradient(virtual.meta_loss))
        if soft:
            objectives, weights = [t["total"], virtual.meta_loss], [1.0, 1.0]
        else:
            objectives, weights = [t["total"], t_mpl], [1.0, fb.advantage]
        t_grads = t_tape.gradient(
            objectives, self.teacher.trainable_variables,
            output_gradients=[tf.cast(w, o.dtype) * tf.ones_like(o)
                              for o, w in zip(objectives, weights)])

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
        student = StudentStep(virtual.student_loss, s_lr, s_norm, fb,
                              virtual.s_u)
        metrics = self._step_metrics(batch, t, labels, student, t_lr, t_norm)
        return metrics, _checks(t, t_norm, virtual.student_loss, s_norm,
                                fb.value)

    def _step_metrics(self, batch, t, labels, student, t_lr, t_norm):
        """Global scalars. The reference's names first, then plain ones.

        `cross_entropy/student_on_l` = `mpl/labeled_loss_after` = CE_new:
        after the real update (Taylor) or after the virtual plain-SGD step
        (exact). `mpl/teacher_student_agreement`: how often the student's
        prediction on x_s (before its step) is the pseudo label (the
        teacher's argmax for soft labels); `mpl/pseudo_label_accuracy`: how
        often the pseudo label is the true class, when the unlabeled images'
        labels are known (`u_labels`, never trained on)."""
        fb = student.feedback
        metrics = uda_metrics(t, t_lr, t_norm, batch)
        metrics.update({
            "cross_entropy/student_on_u": all_reduce_sum(student.loss),
            "cross_entropy/student_on_l": fb.ce_new,
            "lr/student": student.lr,
            "mpl/dot_product": fb.value,
            "mpl/moving_dot_product": fb.baseline,
            "grad_norm/student": student.grad_norm,
            "mpl/feedback": fb.value,
            "mpl/baseline": fb.baseline,
            "mpl/labeled_loss_before": fb.ce_old,
            "mpl/labeled_loss_after": fb.ce_new,
            "mpl/teacher_student_agreement": global_accuracy(
                tf.argmax(student.s_u, -1, output_type=tf.int32), labels),
        })
        if "u_labels" in batch:
            metrics["mpl/pseudo_label_accuracy"] = global_accuracy(
                labels, batch["u_labels"])
        weights = t.get("label_weights")
        if weights is None:  # every unlabeled image's pseudo label counts
            weights = tf.ones_like(labels, tf.float32)
        else:
            kept, count = all_reduce_sum([tf.reduce_sum(weights),
                                          tf.cast(tf.size(weights),
                                                  tf.float32)])
            metrics["mpl/label_ratio"] = kept / count
        metrics.update(out_of_class_metrics(t, batch, self.cfg,
                                            learned=weights))
        return metrics
