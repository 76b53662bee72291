"""The training loop: one path for every tf.distribute strategy.

`strategy.run(model.train_step)` inside a tf.function, fed by
`distribute_datasets_from_function`. Keras' `fit` is not used: it fails under
MultiWorkerMirroredStrategy in Keras 3.15 (keras-team/keras#20585), and one
loop for all strategies is simpler to trust.

One call of the tf.function runs up to --iterations_per_loop steps in a
`tf.while_loop` and returns every step's metrics stacked, so the host waits
for the device once per loop, not once per step. The host picks each loop's
length so that it ends at the next --log_every or --save_every step (or the
last step): logs, checkpoints, evaluations and the preemption check happen
between loops, at the steps they always had.

A `Loop` trains one stage (the main MPL/UDA/supervised run, or the finetune
stage) in its own directory: `<dir>/checkpoints`, `<dir>/train` (TensorBoard)
and `<dir>/eval_history.jsonl`.
"""

import json
import math
import os
import shutil
import time

from absl import logging
import tensorflow as tf

from mpl_tf import console
from mpl_tf import distribute
from mpl_tf.evaluate import Evaluator
from mpl_tf.training import checkpoint as ckpt_lib
from mpl_tf.training import nonfinite
from mpl_tf.training.preemption import Preempted, PreemptionWatcher


class NonFiniteError(RuntimeError):
    """Too many steps in a row were skipped for non-finite values."""


# What to change when a stage's steps go non-finite, by training mode.
REMEDIES = {
    "mpl": "lower --mpl_teacher_lr and --mpl_student_lr, or set --grad_bound",
    "uda": "lower --lr, or set --grad_bound",
    "supervised": "lower --lr, or set --grad_bound",
    "finetune": "lower --finetune_lr, or set --grad_bound"}


def first_replica(strategy, values):
    return {k: strategy.experimental_local_results(v)[0]
            for k, v in values.items()}


def loop_length(step, total, per_loop, *periods):
    """Steps the loop starting after `step` runs: at most `per_loop`, and
    never past `total` or the next multiple of any of `periods`."""
    length = min(per_loop, total - step)
    for period in periods:
        length = min(length, period - step % period)
    return length


class Loop:
    """Trains `trainer_model` from its newest checkpoint to `total_steps`."""

    def __init__(self, params, strategy, trainer_model, train_input, source,
                 directory=None, total_steps=None, load_checkpoint=None,
                 remedy=None):
        self.params = params
        self.strategy = strategy
        self.model = trainer_model
        self.input = train_input
        self.source = source
        self.directory = directory or params.output_dir
        self.total_steps = total_steps or params.num_train_steps
        self.load_checkpoint = load_checkpoint
        # What the user should change when too many steps are skipped.
        self.remedy = remedy or REMEDIES[params.mode]
        self.chief = distribute.is_chief(strategy)
        save_dir = self.directory
        self.scratch_dir = None
        if not self.chief:
            # Saving is collective: other workers save too, to scratch, and
            # restore from the chief's checkpoints.
            save_dir = self.scratch_dir = distribute.worker_scratch_dir(
                self.directory, strategy)
            self.load_checkpoint = load_checkpoint or os.path.join(
                self.directory, ckpt_lib.CKPT_SUBDIR)
        self.manager = ckpt_lib.make_manager(
            trainer_model, save_dir, params.keep_checkpoint_max)
        self.history = []
        self.start_step = None
        self._writer = None
        self._last_logged = {}  # the newest logged training scalars
        self._evaluators = {}   # id(network) -> Evaluator
        self._progress = console.Progress(0, enabled=False)
        self.metric_names = []  # a loop's row order; set when it is traced

    @property
    def writer(self):
        if self._writer is None:  # only training writes summaries
            self._writer = (tf.summary.create_file_writer(
                os.path.join(self.directory, "train")) if self.chief
                            else tf.summary.create_noop_writer())
        return self._writer

    def restore(self):
        if not self.chief and not tf.train.latest_checkpoint(
                self.load_checkpoint):
            return None  # the chief has not saved yet: a fresh start
        return ckpt_lib.restore(self.manager, self.load_checkpoint)

    def _train_fn(self):
        """train_loop(iterator, steps) -> (rows, in_a_row): runs up to
        `steps` steps in one call. rows[i] holds step i's metrics, in the
        order of `self.metric_names`, as float64; in_a_row is the count of
        non-finite steps in a row after the last one. The loop stops early
        after a step that takes that count above --max_nonfinite_steps, so
        the run stops at that step, as with one step per call."""
        model, strategy = self.model, self.strategy
        # XLA compiles the replica step; the iterator's get_next stays out.
        step = (tf.function(model.train_step, jit_compile=True)
                if self.params.jit_compile else model.train_step)
        names = self.metric_names
        limit = tf.constant(self.params.max_nonfinite_steps, tf.int64)

        def one_step(iterator):
            metrics = first_replica(
                strategy, strategy.run(step, args=(next(iterator),)))
            names[:] = list(metrics)  # Python, at trace time
            for name in names:
                if metrics[name].shape.rank != 0:
                    raise ValueError(f"metric {name} is not a scalar: "
                                     f"{metrics[name].shape}")
            row = tf.stack([tf.cast(metrics[n], tf.float64) for n in names])
            return row, tf.identity(model.nonfinite_in_a_row.read_value())

        @tf.function
        def train_loop(iterator, steps):
            def more(i, in_a_row, rows):
                return tf.logical_and(i < steps, in_a_row <= limit)

            def body(i, in_a_row, rows):
                row, in_a_row = one_step(iterator)
                return i + 1, in_a_row, rows.write(i, row)

            rows = tf.TensorArray(tf.float64, size=0, dynamic_size=True)
            start = tf.identity(model.nonfinite_in_a_row.read_value())
            _, in_a_row, rows = tf.while_loop(
                more, body, (tf.constant(0), start, rows),
                parallel_iterations=1)
            return rows.stack(), in_a_row
        return train_loop

    def evaluate(self, split_name="test"):
        return self._evaluate(self.model.eval_network, split_name)

    def evaluate_splits(self, network=None):
        """{"test": ..., "val": ... (when there is a validation split)} of
        `network` (default: the deployed network, EMA twin if any)."""
        network = network or self.model.eval_network
        out = {"test": self._evaluate(network, "test")}
        if getattr(self.source, "val", None) is not None:
            out["val"] = self._evaluate(network, "val")
        return out

    def _evaluate(self, network, split_name):
        if id(network) not in self._evaluators:
            self._evaluators[id(network)] = Evaluator(self.strategy, network)
        return self._evaluators[id(network)](getattr(self.source, split_name),
                                             self.params.eval_batch_size)

    def _teacher(self):
        """MPL's teacher, evaluated beside the deployed student."""
        teacher = self.model.networks().get("teacher")
        return None if teacher is self.model.deployed else teacher

    def _write_scalars(self, step, metrics, prefix=""):
        with self.writer.as_default(step=step):
            for name, value in metrics.items():
                tf.summary.scalar(prefix + name, value)
        self.writer.flush()

    def _save_and_eval(self, step):
        path = ckpt_lib.save(self.manager, step)
        record = {"step": step, "checkpoint": path, **self.evaluate_splits()}
        teacher = self._teacher()
        if teacher is not None:
            record["teacher"] = self.evaluate_splits(teacher)
        for split in ("test", "val"):
            if split not in record:
                continue
            keys = ("top1", "top5", "loss")
            self._write_scalars(step, {k: record[split][k] for k in keys},
                                f"eval/{split}/")
            if teacher is not None:
                self._write_scalars(
                    step, {k: record["teacher"][split][k] for k in keys},
                    f"eval/{split}/teacher_")
        if self._last_logged:  # JSON has no NaN or infinity: null instead
            record["train"] = {k: v if math.isfinite(v) else None
                               for k, v in self._last_logged.items()}
        self.history.append(record)
        if self.chief:
            with open(os.path.join(self.directory, "eval_history.jsonl"), "a",
                      encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")
        line = f"step {step}: test top-1 {record['test']['top1']:.4f}"
        if teacher is not None:
            line += f" (teacher {record['teacher']['test']['top1']:.4f})"
        if "val" in record:
            line += f"; validation top-1 {record['val']['top1']:.4f}"
        self._progress.line(line)
        logging.info("step %d: checkpoint %s", step, path)
        return record

    def run(self, verbose=True):
        """Train to total_steps; returns the final {"test", "val"} metrics
        (and "teacher": the same of MPL's teacher)."""
        p = self.params
        restored = self.restore()
        if restored and self.load_checkpoint and \
                p.load_checkpoint_and_restart_global_step:
            for opt, _ in self.model.optimizers():
                opt.iterations.assign(0)
        start = int(self.model.global_step.numpy())
        self.start_step = start
        total = self.total_steps
        show = verbose and self.chief
        if start >= total:
            if show:
                print(f"already trained {start} of {total} steps in "
                      f"{self.directory}", flush=True)
            return self.evaluate_splits()
        if restored and show:
            print(f"resuming at step {start} from {restored}", flush=True)
        dataset = self.strategy.distribute_datasets_from_function(
            lambda ctx: self.input.dataset(ctx, start_step=start))
        iterator = iter(dataset)
        train_loop = self._train_fn()
        self._progress = console.Progress(total, start, enabled=show)
        with PreemptionWatcher(self.strategy) as preemption:
            self._train(train_loop, iterator, start, total, preemption)
        if self.scratch_dir:
            shutil.rmtree(self.scratch_dir, ignore_errors=True)
        return {k: v for k, v in self.history[-1].items()
                if k in ("test", "val", "teacher")}

    def _train(self, train_loop, iterator, start, total, preemption):
        p = self.params
        per_loop = p.iterations_per_loop or p.log_every
        t0, last = time.time(), start
        self.model.window.reset_state()
        step = start
        if nonfinite.too_many(self.model.nonfinite_in_a_row.numpy(),
                              p.max_nonfinite_steps):
            self.model.nonfinite_in_a_row.assign(0)  # a checkpoint of a stop
        while step < total:
            length = loop_length(step, total, per_loop, p.log_every,
                                 p.save_every)
            rows, in_a_row = train_loop(iterator,
                                        tf.constant(length, tf.int32))
            rows, in_a_row = rows.numpy(), int(in_a_row)  # the one host read
            step += len(rows)
            stopping = nonfinite.too_many(in_a_row, p.max_nonfinite_steps)
            if step % p.log_every == 0 or step == total or stopping:
                self._log(step, rows[-1], time.time() - t0, step - last)
                self.model.window.reset_state()
                t0, last = time.time(), step
            if stopping:
                self._stop_nonfinite(step, in_a_row, rows[-1])
            saved = step % p.save_every == 0 or step == total
            if saved:
                self._save_and_eval(step)
            if preemption.requested() and step < total:
                path = (self.manager.latest_checkpoint if saved else
                        ckpt_lib.save(self.manager, step))
                raise Preempted(
                    f"SIGTERM: saved {path} at step {step}, the end of the "
                    "running loop; rerun the same command to resume from it")

    def _log(self, step, row, seconds, steps):
        """TensorBoard, the progress display and the window's line about
        skipped steps, at a logging step (`steps` since the last one)."""
        values = {k: float(v) for k, v in zip(self.metric_names, row)}
        values["time/steps_per_sec"] = steps / max(seconds, 1e-9)
        self._last_logged = {"step": step, **values}
        self._write_scalars(step, values)
        shown = [(k.split("/")[-1], values[k]) for k in values
                 if k.startswith("cross_entropy/")]
        self._progress.update(step, shown)
        report = nonfinite.window_report(
            int(values[nonfinite.WINDOW_SKIPPED]), steps,
            int(values[nonfinite.WINDOW_CAUSE]))
        if report:
            self._progress.line(f"warning: {report}")

    def _stop_nonfinite(self, step, in_a_row, row):
        """Save the last good state (the skipped steps changed nothing) and
        stop. The saved count of skipped steps in a row starts again at 0,
        so a rerun with lower learning rates resumes instead of stopping."""
        cause = int(dict(zip(self.metric_names, row)).get(nonfinite.CAUSE, 0))
        self.model.nonfinite_in_a_row.assign(0)
        path = ckpt_lib.save(self.manager, step)
        raise NonFiniteError(nonfinite.stop_message(
            step, in_a_row,
            f"--max_nonfinite_steps={self.params.max_nonfinite_steps}",
            cause, self.remedy, path))
