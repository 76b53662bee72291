"""Reduced Meta Pseudo Labels (docs/design.md, section 5).

The large teacher is not here: its class distributions p for the training
images were stored by `--task_mode=label` and arrive in each batch
(`l_teacher`, `u_teacher`: p of the labeled images and of the unlabeled
images, un-augmented). The reduced teacher T_r (a residual MLP on log p,
`models/reduced_teacher.py`) plays the teacher's part in the MPL step:

- its supervised loss: CE(y_l, T_r(log p_l)) with label smoothing;
- no UDA term (T_r sees one stored distribution per image, not two views);
- its logits T_r(log p_u) label the student's strong view of the same
  images; the feedback h (Taylor) or the meta-gradient through the
  student's virtual step (exact/soft) trains T_r.

Everything else (student update, paired CE_old/CE_new, baseline, EMA,
undo of a non-finite step, checkpoints, export) is MPLModel's.
"""

import tensorflow as tf

from mpl_tf import losses
from mpl_tf.models.reduced_teacher import log_probabilities
from mpl_tf.training.mpl import MPLModel
from mpl_tf.training.uda import batch_sizes


class ReducedMPLModel(MPLModel):

    def __init__(self, cfg, reduced_teacher, student, teacher_optimizer,
                 student_optimizer, ema_network=None, **kwargs):
        if cfg.mpl_low_memory:
            raise ValueError("Reduced MPL needs no --mpl_low_memory: its "
                             "teacher holds no image activations")
        super().__init__(cfg, reduced_teacher, student, teacher_optimizer,
                         student_optimizer, ema_network=ema_network, **kwargs)

    def networks(self):
        # Not "teacher": the loop evaluates a "teacher" on test images, and
        # T_r takes distributions, not images.
        return {"reduced_teacher": self.teacher, "student": self.student}

    def teacher_losses(self, batch, step, teacher=None):
        # `teacher` stands in for an image network's call (MPLModel); T_r
        # is not one, so it is always None here.
        del teacher
        global_b, global_u = batch_sizes(batch)
        b = tf.shape(batch["l_teacher"])[0]
        logits = self.teacher(
            log_probabilities(tf.concat([batch["l_teacher"],
                                         batch["u_teacher"]], axis=0)),
            training=True)
        z_l, z_u = logits[:b], logits[b:]
        sup = losses.labeled_ce(batch["l_labels"], z_l, global_b,
                                self.cfg.label_smoothing)
        zero = tf.zeros_like(sup)
        # One view: the stored distribution labels both of the student's.
        return {"total": sup, "sup": sup, "uda": zero, "kept": zero,
                "mask": tf.zeros_like(z_u[:, 0]),
                "weight": zero, "z_w": z_u, "z_s": z_u,
                "global_b": global_b, "global_u": global_u}
