"""UDA: the teacher alone, on labeled CE plus unlabeled consistency.

`teacher_losses` is also the first half of the MPL step.
"""

import tensorflow as tf

from mpl_tf import losses, schedules
from mpl_tf.training.base import (TrainerModel, all_reduce_sum,
                                  global_accuracy, replica_count)


def batch_sizes(batch):
    """Global labeled and unlabeled image counts of this step (int32; the
    losses cast them to their own dtype)."""
    n = replica_count()
    return tf.shape(batch["l_images"])[0] * n, tf.shape(batch["u_weak"])[0] * n


def teacher_images(batch):
    """The teacher's one batch: labeled, weak and strong views, in order."""
    return tf.concat([batch["l_images"], batch["u_weak"], batch["u_strong"]],
                     axis=0)


def split_teacher_logits(logits, batch):
    """The teacher's logits on `teacher_images(batch)` -> (z_l, z_w, z_s)."""
    b, u = tf.shape(batch["l_images"])[0], tf.shape(batch["u_weak"])[0]
    return tf.split(logits, [b, u, u], axis=0)


def teacher_losses(teacher, batch, cfg, step):
    """One teacher forward on [x_l, x_w, x_s]; returns a dict of tensors.

    `total` = L_sup + lambda(t) * L_uda (this replica's share); `z_s` the
    strong-view logits; `kept` the number of unlabeled images over the
    confidence threshold on this replica.
    """
    global_b, global_u = batch_sizes(batch)
    z_l, z_w, z_s = split_teacher_logits(
        teacher(teacher_images(batch), training=True), batch)
    sup = losses.labeled_ce(batch["l_labels"], z_l, global_b,
                            cfg.label_smoothing)
    uda, mask = losses.uda_consistency(z_w, z_s, cfg.uda_temp,
                                       cfg.uda_threshold, global_u)
    weight = schedules.uda_weight(step, cfg.uda_weight, cfg.uda_steps,
                                  uda.dtype)
    return {"total": sup + weight * uda, "sup": sup, "uda": uda,
            "mask": mask, "kept": tf.reduce_sum(mask), "weight": weight,
            "z_w": z_w, "z_s": z_s, "global_b": global_b,
            "global_u": global_u}


def uda_metrics(t, lr, norm, batch):
    """The teacher's scalars, global (summed over replicas).

    `uda/u_ratio`: the share of unlabeled images over the confidence
    threshold (the UDA mask). With the unlabeled images' true labels known
    (`u_labels`, never trained on): `uda/teacher_accuracy_on_u`, the
    accuracy of the teacher's weak-view prediction (the UDA target's class).
    """
    sup, uda, kept = all_reduce_sum([t["sup"], t["uda"], t["kept"]])
    metrics = {"cross_entropy/teacher_on_l": sup,
               "cross_entropy/teacher_on_u": uda,
               "uda/u_ratio": kept / tf.cast(t["global_u"], kept.dtype),
               "uda/weight": t["weight"], "lr/teacher": lr,
               "grad_norm/teacher": norm}
    if "u_labels" in batch:
        metrics["uda/teacher_accuracy_on_u"] = global_accuracy(
            tf.argmax(t["z_w"], -1, output_type=tf.int32), batch["u_labels"])
    return metrics


def out_of_class_metrics(t, batch, cfg, learned=None):
    """Where some unlabeled images are known to be of none of the classes
    (`u_out_of_classes`, never trained on): their share of the unlabeled
    batch (`ood/share`), of the images over UDA's confidence threshold
    (`ood/share_confident`), and, for MPL, of the images whose pseudo labels
    the student learns from, weighted by `learned` (`ood/share_learned`);
    the teacher's mean confidence (max of its UDA target) on the images of
    known classes and on the others. They say why a method degrades when
    the unlabeled pool holds junk."""
    if "u_out_of_classes" not in batch:
        return {}
    out = tf.cast(batch["u_out_of_classes"], tf.float32)
    inside = tf.cast(batch["u_labels"] >= 0, tf.float32)
    mask = tf.cast(t["mask"], tf.float32)
    confidence = tf.reduce_max(tf.nn.softmax(
        tf.cast(t["z_w"], tf.float32) / cfg.uda_temp, -1), -1)
    weights = tf.ones_like(out) if learned is None else tf.cast(learned,
                                                                tf.float32)
    sums = all_reduce_sum([tf.reduce_sum(x) for x in (
        out, tf.ones_like(out), out * mask, mask, out * weights, weights,
        confidence * inside, inside, confidence * out)])
    (n_out, n, out_kept, kept, out_learned, n_learned, conf_in, n_in,
     conf_out) = sums
    share = lambda a, b: a / tf.maximum(b, 1.0)  # noqa: E731
    metrics = {"ood/share": share(n_out, n),
               "ood/share_confident": share(out_kept, kept),
               "ood/teacher_confidence_in": share(conf_in, n_in),
               "ood/teacher_confidence_out": share(conf_out, n_out)}
    if learned is not None:
        metrics["ood/share_learned"] = share(out_learned, n_learned)
    return metrics


class UDAModel(TrainerModel):

    def __init__(self, cfg, teacher, optimizer, ema_network=None, **kwargs):
        super().__init__(cfg, deployed=teacher, ema_network=ema_network,
                         **kwargs)
        self.teacher = teacher
        self.teacher_optimizer = optimizer

    @property
    def main_optimizer(self):
        return self.teacher_optimizer

    def networks(self):
        return {"teacher": self.teacher}

    def optimizers(self):
        return [(self.teacher_optimizer, self.teacher)]

    def compute_step(self, batch):
        step = self.global_step
        with tf.GradientTape() as tape:
            t = teacher_losses(self.teacher, batch, self.cfg, step)
        lr = self.teacher_optimizer.learning_rate
        norm = self.apply_gradients(
            self.teacher_optimizer, self.teacher,
            tape.gradient(t["total"], self.teacher.trainable_variables))
        self.update_ema(step)
        metrics = uda_metrics(t, lr, norm, batch)
        metrics.update(out_of_class_metrics(t, batch, self.cfg))
        return metrics, {"teacher loss": t["total"], "teacher gradient": norm}
