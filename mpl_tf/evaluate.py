"""Top-1 / top-5 accuracy and loss of a network on a split, under any strategy."""

import tensorflow as tf

from mpl_tf.data import pipeline


class Evaluator:
    """Evaluates one network; its step is traced once and reused for every
    split and every evaluation (a new trace per call would make TensorFlow
    warn about retracing)."""

    def __init__(self, strategy, network):
        self.strategy = strategy
        k = min(5, network.output_shape[-1])

        def replica_fn(images, labels):
            logits = tf.cast(network(images, training=False), tf.float32)
            top1 = tf.math.in_top_k(labels, logits, 1)
            topk = tf.math.in_top_k(labels, logits, k)
            loss = tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits)
            return tf.stack([tf.reduce_sum(tf.cast(top1, tf.float32)),
                             tf.reduce_sum(tf.cast(topk, tf.float32)),
                             tf.reduce_sum(loss),
                             tf.cast(tf.size(labels), tf.float32)])

        @tf.function(reduce_retracing=True)
        def step(images, labels):
            out = strategy.run(replica_fn, args=(images, labels))
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
        top1, top5, loss, count = totals.numpy().tolist()
        count = max(count, 1.0)
        return {"top1": top1 / count, "top5": top5 / count,
                "loss": loss / count, "count": int(count)}
