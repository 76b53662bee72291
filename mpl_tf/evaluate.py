"""How a network is scored on a split: top-1 and top-5 accuracy and mean
cross-entropy. `batch_totals` is the one rule, used by the command line's
`Evaluator` (any network, any strategy) and by the Keras classes'
`test_step` (`evaluate`, validation during `fit`)."""

import tensorflow as tf

from mpl_tf.data import pipeline


def batch_totals(logits, labels):
    """[top-1 correct, top-5 correct (top-k with fewer classes), summed
    cross-entropy, images] of one batch, float32."""
    logits = tf.cast(logits, tf.float32)
    labels = tf.reshape(tf.cast(labels, tf.int32), [-1])
    k = min(5, logits.shape[-1])
    loss = tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits)
    correct = [tf.reduce_sum(tf.cast(tf.math.in_top_k(labels, logits, n),
                                     tf.float32)) for n in (1, k)]
    return tf.stack([*correct, tf.reduce_sum(loss),
                     tf.cast(tf.size(labels), tf.float32)])


def scores(totals):
    """{"top1", "top5", "loss", "count"} from summed `batch_totals`."""
    top1, top5, loss, count = [float(t) for t in totals]
    count = max(count, 1.0)
    return {"top1": top1 / count, "top5": top5 / count, "loss": loss / count,
            "count": int(count)}


class Evaluator:
    """Evaluates one network under a strategy; its step is traced once and
    reused for every split and every evaluation (a new trace per call would
    make TensorFlow warn about retracing)."""

    def __init__(self, strategy, network):
        self.strategy = strategy

        @tf.function(reduce_retracing=True)
        def step(images, labels):
            out = strategy.run(lambda x, y: batch_totals(
                network(x, training=False), y), args=(images, labels))
            return strategy.reduce(tf.distribute.ReduceOp.SUM, out, axis=None)

        self._step = step

    def __call__(self, split, batch_size):
        """{"top1", "top5", "loss", "count"} over the whole split."""
        dataset = self.strategy.distribute_datasets_from_function(
            lambda ctx: pipeline.eval_dataset(split, batch_size=batch_size,
                                              input_context=ctx))
        totals = tf.zeros([4])
        for images, labels in dataset:
            totals += self._step(images, labels)
        return scores(totals.numpy())
