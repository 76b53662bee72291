"""The training loop: one path for every tf.distribute strategy.

`strategy.run(model.train_step)` inside a tf.function, fed by
`distribute_datasets_from_function`. Keras' `fit` is not used: it fails under
MultiWorkerMirroredStrategy in Keras 3.15 (keras-team/keras#20585), and one
loop for all strategies is simpler to trust.
"""

import json
import os
import time

from absl import logging
import keras
import tensorflow as tf

from mpl_tf.evaluate import evaluate
from mpl_tf.training import checkpoint as ckpt_lib


class NonFiniteError(RuntimeError):
    """Too many steps in a row had a non-finite gradient."""


def first_replica(strategy, values):
    return {k: strategy.experimental_local_results(v)[0]
            for k, v in values.items()}


class Loop:
    """Trains `trainer_model` from the newest checkpoint to num_train_steps."""

    def __init__(self, params, strategy, trainer_model, train_input, source,
                 max_nonfinite_steps=None):
        self.params = params
        self.strategy = strategy
        self.model = trainer_model
        self.input = train_input
        self.source = source
        self.max_nonfinite_steps = max_nonfinite_steps
        self.manager = ckpt_lib.make_manager(
            trainer_model, params.output_dir, params.keep_checkpoint_max)
        self.writer = tf.summary.create_file_writer(
            os.path.join(params.output_dir, "train"))
        self.history = []
        self.start_step = None

    def restore(self):
        return ckpt_lib.restore(self.manager, self.params.load_checkpoint)

    def _train_fn(self):
        model, strategy = self.model, self.strategy

        @tf.function
        def train_step(iterator):
            return strategy.run(model.train_step, args=(next(iterator),))
        return train_step

    def evaluate(self, split_name="test"):
        split = getattr(self.source, split_name)
        return evaluate(self.strategy, self.model.eval_network, split,
                        self.params.eval_batch_size)

    def _write_scalars(self, step, metrics, prefix=""):
        with self.writer.as_default(step=step):
            for name, value in metrics.items():
                tf.summary.scalar(prefix + name, value)
        self.writer.flush()

    def _save_and_eval(self, step):
        path = self.manager.save(checkpoint_number=step)
        result = self.evaluate("test")
        self._write_scalars(step, {"top1": result["top1"],
                                   "top5": result["top5"],
                                   "loss": result["loss"]}, "eval/")
        record = {"step": step, "checkpoint": path, "test": result}
        if self.source.val is not None:
            record["val"] = self.evaluate("val")
        self.history.append(record)
        with open(os.path.join(self.params.output_dir, "eval_history.jsonl"),
                  "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        logging.info("step %d: test top-1 %.4f (checkpoint %s)", step,
                     result["top1"], path)
        return result

    def run(self, verbose=True):
        """Train to num_train_steps; returns the final test metrics."""
        p = self.params
        restored = self.restore()
        if restored and p.load_checkpoint and \
                p.load_checkpoint_and_restart_global_step:
            for opt, _ in self.model.optimizers():
                opt.iterations.assign(0)
        start = int(self.model.global_step.numpy())
        self.start_step = start
        total = p.num_train_steps
        if start >= total:
            logging.info("Already trained %d of %d steps", start, total)
            return self.evaluate("test")
        dataset = self.strategy.distribute_datasets_from_function(
            lambda ctx: self.input.dataset(ctx, start_step=start))
        iterator = iter(dataset)
        train_step = self._train_fn()
        bar = keras.utils.Progbar(total, verbose=1 if verbose else 0,
                                  stateful_metrics=None)
        bar.update(start)
        t0, last = time.time(), start
        for step in range(start + 1, total + 1):
            metrics = train_step(iterator)
            if step % p.log_every == 0 or step == total:
                values = {k: float(v) for k, v in
                          first_replica(self.strategy, metrics).items()}
                now = time.time()
                values["time/steps_per_sec"] = (step - last) / max(now - t0, 1e-9)
                t0, last = now, step
                self._write_scalars(step, values)
                shown = [(k.split("/")[-1], values[k]) for k in values
                         if k.startswith("cross_entropy/")]
                bar.update(step, values=shown)
                self._check_nonfinite(step)
            if step % p.save_every == 0 or step == total:
                self._save_and_eval(step)
        return self.history[-1]["test"]

    def _check_nonfinite(self, step):
        limit = self.max_nonfinite_steps
        in_a_row = int(self.model.nonfinite_in_a_row.numpy())
        if limit is not None and in_a_row > limit:
            raise NonFiniteError(
                f"step {step}: {in_a_row} steps in a row had a non-finite "
                f"gradient (more than --max_nonfinite_steps={limit}); "
                f"stopped. The last good checkpoint is in "
                f"{self.manager.directory}; lower the learning rates or set "
                "--grad_bound")
