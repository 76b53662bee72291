"""What every train step shares: global-batch bookkeeping, the gradient path
(all-reduce -> weight decay -> global-norm clip -> optimizer), the undo of
a non-finite step, EMA of the deployed network, and checkpointable state.

Subclasses (supervised, UDA, MPL) implement `compute_step(batch)`; the
shared `train_step` wraps it so that a step whose losses, gradients or
feedback are not finite changes no variable. It runs in a replica context
(inside `strategy.run`) and returns GLOBAL metric values, identical on every
replica.
"""

import keras
import tensorflow as tf

from mpl_tf import compat
from mpl_tf.training import ema as ema_lib
from mpl_tf.training import nonfinite


def replica_count():
    return tf.distribute.get_replica_context().num_replicas_in_sync


def all_reduce_sum(values):
    """Sum over replicas (identity on one replica); keeps list structure."""
    return tf.distribute.get_replica_context().all_reduce(
        tf.distribute.ReduceOp.SUM, values)


def global_accuracy(predicted, labels):
    """Fraction of `predicted == labels` over the entries whose label is
    known (>= 0), over all replicas."""
    known = tf.cast(labels >= 0, tf.float32)
    correct = tf.cast(tf.equal(predicted, labels), tf.float32) * known
    correct, known = all_reduce_sum([tf.reduce_sum(correct),
                                     tf.reduce_sum(known)])
    return correct / tf.maximum(known, 1.0)


def decayed_variable_ids(model):
    """ids of the trainable weights that take weight decay: all but BN's."""
    ids = set()
    for layer in compat.sublayers(model):
        if isinstance(layer, keras.layers.BatchNormalization):
            continue
        for w in compat.own_trainable_variables(layer):
            ids.add(id(w))
    return ids


def seed_states(network):
    """State variables of the random-seed generators of a network's layers."""
    return [state for layer in compat.sublayers(network, include_self=True)
            for state in compat.seed_generator_states(layer)]


class TrainerModel(keras.Model):
    """Owns networks, optimizers and step state; subclasses define the step."""

    def __init__(self, cfg, deployed, ema_network=None, **kwargs):
        super().__init__(**kwargs)
        self.cfg = cfg
        self.deployed = deployed          # the network that gets exported
        self.ema_network = ema_network    # its moving average, or None
        # Steps whose gradient norm was not finite (no update applied).
        self.nonfinite_steps = tf.Variable(
            0, dtype=tf.int64, trainable=False, name="nonfinite_steps",
            aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
        self.nonfinite_in_a_row = tf.Variable(
            0, dtype=tf.int64, trainable=False, name="nonfinite_in_a_row",
            aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
        self._decay_ids = {}
        # The logging window's statistics (nonfinite.Window).
        self.window = nonfinite.Window(feedback=self.HAS_FEEDBACK)

    # Whether the step logs the MPL feedback (its window statistics).
    HAS_FEEDBACK = False

    @property
    def metrics(self):
        """What Keras resets at each epoch (and the CLI at each window)."""
        return [self.window]

    # -- what subclasses provide ----------------------------------------------
    @property
    def main_optimizer(self):
        """The optimizer whose iteration count is the global step."""
        raise NotImplementedError

    def networks(self):
        """name -> network, everything checkpointed besides optimizers."""
        raise NotImplementedError

    def optimizers(self):
        raise NotImplementedError

    # -- shared machinery -----------------------------------------------------
    @property
    def global_step(self):
        return self.main_optimizer.iterations

    @property
    def eval_network(self):
        """What we evaluate and export: the EMA twin when there is one."""
        return self.ema_network if self.ema_network is not None else self.deployed

    def build_optimizers(self):
        for opt, net in self.optimizers():
            opt.build(net.trainable_variables)
        if self.ema_network is not None:
            ema_lib.copy(self.ema_network, self.deployed)

    def reduce_gradients(self, network, grads):
        """Sum over replicas, then add weight decay (non-BN weights) once."""
        grads = all_reduce_sum(list(grads))
        key = id(network)
        if key not in self._decay_ids:
            self._decay_ids[key] = decayed_variable_ids(network)
        wd = self.cfg.weight_decay
        if not wd:
            return grads
        return [g + wd * v.value if id(v) in self._decay_ids[key] else g
                for g, v in zip(grads, network.trainable_variables)]

    def clip_and_apply(self, optimizer, network, grads):
        """Clip reduced gradients by global norm, then apply. -> norm.

        A non-finite norm needs no guard here: `train_step` undoes the
        whole step."""
        norm = tf.linalg.global_norm(grads)
        grads, _ = tf.clip_by_global_norm(grads, self.cfg.grad_bound,
                                          use_norm=norm)
        optimizer.apply(grads, network.trainable_variables)
        return norm

    def apply_gradients(self, optimizer, network, grads):
        """This replica's gradients -> reduce, decay, clip, apply. -> norm."""
        return self.clip_and_apply(optimizer, network,
                                   self.reduce_gradients(network, grads))

    def step_state(self):
        """Every variable a step may write, but the step counters: network
        weights (batch-norm statistics and dropout seeds included), the EMA
        twin, optimizer slots."""
        state = []
        for net in self.networks().values():
            state += net.variables
        if self.ema_network is not None:
            state += self.ema_network.variables
        for opt, _ in self.optimizers():
            state += [v for v in opt.variables if v is not opt.iterations]
        return state

    def train_step(self, batch):
        """`compute_step`, undone when any of its checks is not finite.

        The checks (`nonfinite.CHECKS`): the step's losses, gradient norms
        and feedback, and after its updates the global norm of each trained
        network's weights. A check that fails on any replica undoes the step
        on all of them. The undo is a select, not a branch: assignments to
        mirrored variables synchronise replicas, which TensorFlow forbids
        inside `tf.cond`. A skipped step still advances the step counter (so
        the schedules stay aligned with the global step) and is counted;
        `nonfinite/cause` says which checks failed (0 for a kept step).
        """
        state = self.step_state()
        before = [tf.identity(v) for v in state]
        metrics, checked = self.compute_step(batch)
        for name, network in self.networks().items():
            checked[f"{name.replace('_', ' ')} weights"] = (
                tf.linalg.global_norm(network.trainable_variables))
        cause = self._nonfinite_cause(checked)
        finite = tf.equal(cause, 0)
        for var, old in zip(state, before):
            var.assign(tf.where(finite, var, old))
        bad = tf.cast(tf.logical_not(finite), tf.int64)
        self.nonfinite_steps.assign_add(bad)
        self.nonfinite_in_a_row.assign(bad * (self.nonfinite_in_a_row + bad))
        metrics[nonfinite.SKIPPED] = tf.identity(self.nonfinite_steps)
        metrics[nonfinite.CAUSE] = cause
        self.window.update_state(metrics.get(nonfinite.FEEDBACK), cause)
        metrics.update(self.window.result())
        return metrics

    @staticmethod
    def _nonfinite_cause(checked):
        """Bit i set when `nonfinite.CHECKS[i]` is not finite on some
        replica (int64, the same on every replica)."""
        unknown = set(checked) - set(nonfinite.CHECKS)
        if unknown:
            raise ValueError(f"unknown checks {sorted(unknown)}")
        flags = [tf.cast(tf.logical_not(tf.reduce_all(tf.math.is_finite(
            checked[name]))), tf.float32) if name in checked
                 else tf.constant(0.0) for name in nonfinite.CHECKS]
        failed = all_reduce_sum(tf.stack(flags)) > 0
        bits = tf.constant([1 << i for i in range(len(nonfinite.CHECKS))],
                           tf.int64)
        return tf.reduce_sum(tf.where(failed, bits, tf.zeros_like(bits)))

    def compute_step(self, batch):
        """One step's updates. -> (GLOBAL metrics, {check name in
        `nonfinite.CHECKS`: tensor that must be finite for the step to be
        kept})."""
        raise NotImplementedError

    def update_ema(self, step):
        if self.ema_network is None:
            return
        from mpl_tf import schedules
        dtype = self.ema_network.trainable_variables[0].dtype
        ema_lib.update(self.ema_network, self.deployed,
                       schedules.ema_decay(step, self.cfg.ema_decay, dtype))

    def checkpoint_items(self):
        items = dict(self.networks())
        # Dropout's random state lives outside the weights; without it a
        # resumed run would draw other masks than an uninterrupted one.
        for name, net in self.networks().items():
            for i, state in enumerate(seed_states(net)):
                items[f"{name}_seed_state_{i}"] = state
        for i, (opt, _) in enumerate(self.optimizers()):
            items[f"optimizer_{i}_{opt.name}"] = opt
        if self.ema_network is not None:
            items["ema"] = self.ema_network
        items["nonfinite_steps"] = self.nonfinite_steps
        items["nonfinite_in_a_row"] = self.nonfinite_in_a_row
        return items

    def compile(self, **kwargs):
        # With no optimizer argument Keras would build an unused RMSprop;
        # this model owns its optimizers.
        super().compile(optimizer=None, **kwargs)
