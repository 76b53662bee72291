"""Top-1 / top-5 accuracy and loss of a network on a split, under any strategy."""

import tensorflow as tf

from mpl_tf.data import pipeline


def evaluate(strategy, network, split, batch_size):
    """Returns {"top1", "top5", "loss", "count"} over the whole split."""
    dataset = strategy.distribute_datasets_from_function(
        lambda ctx: pipeline.eval_dataset(split, batch_size, ctx))
    num_classes = network.output_shape[-1]
    k = min(5, num_classes)

    @tf.function
    def step(images, labels):
        def replica_fn(images, labels):
            logits = tf.cast(network(images, training=False), tf.float32)
            top1 = tf.math.in_top_k(labels, logits, 1)
            topk = tf.math.in_top_k(labels, logits, k)
            loss = tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits)
            return tf.stack([tf.reduce_sum(tf.cast(top1, tf.float32)),
                             tf.reduce_sum(tf.cast(topk, tf.float32)),
                             tf.reduce_sum(loss),
                             tf.cast(tf.size(labels), tf.float32)])
        out = strategy.run(replica_fn, args=(images, labels))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, out, axis=None)

    totals = tf.zeros([4])
    for images, labels in dataset:
        totals += step(images, labels)
    top1, top5, loss, count = totals.numpy().tolist()
    count = max(count, 1.0)
    return {"top1": top1 / count, "top5": top5 / count, "loss": loss / count,
            "count": int(count)}
