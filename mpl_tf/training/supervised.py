"""Supervised baseline: one network trained on the labeled split only."""

import tensorflow as tf

from mpl_tf import losses
from mpl_tf.training.base import TrainerModel, all_reduce_sum, replica_count


class SupervisedModel(TrainerModel):

    def __init__(self, cfg, network, optimizer, ema_network=None, **kwargs):
        super().__init__(cfg, deployed=network, ema_network=ema_network,
                         **kwargs)
        self.network = network
        self.optimizer_ = optimizer

    @property
    def main_optimizer(self):
        return self.optimizer_

    def networks(self):
        return {"model": self.network}

    def optimizers(self):
        return [(self.optimizer_, self.network)]

    def compute_step(self, batch):
        step = self.global_step
        x_l, y_l = batch["l_images"], batch["l_labels"]
        global_b = tf.shape(x_l)[0] * replica_count()
        with tf.GradientTape() as tape:
            logits = self.network(x_l, training=True)
            loss = losses.labeled_ce(y_l, logits, global_b,
                                     self.cfg.label_smoothing)
        lr = self.optimizer_.learning_rate
        norm = self.apply_gradients(
            self.optimizer_, self.network,
            tape.gradient(loss, self.network.trainable_variables))
        self.update_ema(step)
        metrics = {"cross_entropy/model_on_l": all_reduce_sum(loss),
                   "lr/model": lr, "grad_norm/model": norm}
        return metrics, {"model loss": loss, "model gradient": norm}
