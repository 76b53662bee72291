"""Command line: python -m mpl_tf.main --flagfile=flags/digits_50_mpl.cfg

task_mode train: train (resuming from output_dir's newest checkpoint); with
  --finetune_steps > 0 then finetune; evaluate and export the result.
task_mode finetune: the finetune stage alone, from the trained checkpoint.
task_mode eval: evaluate the newest (or, with --eval_all_checkpoints, every)
  checkpoint on validation and test; write eval.json.
task_mode export: export the newest checkpoint (or --load_checkpoint).
task_mode label: store the newest checkpoint's class distributions of the
  training images under output_dir/teacher_labels (for Reduced MPL's
  --teacher_labels).

Every check of flags, files and data runs before anything is written.
"""

import json
import os
import shutil
import sys

from absl import app
from absl import logging

from mpl_tf import config
from mpl_tf import console
from mpl_tf import flags as mpl_flags
from mpl_tf.errors import ConfigError, StorageError

# Nothing above imports TensorFlow: `main` sets the console's log levels
# from the parsed flags first (mpl_tf/console.py).

HPARAMS_FILE = "hparams.json"
SPLITS_FILE = "splits.json"
FINETUNE_SUBDIR = "finetune"


def _read_hparams(output_dir):
    path = os.path.join(output_dir, HPARAMS_FILE)
    if not os.path.exists(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as err:
        raise ConfigError(f"{path} cannot be read ({err}); fix or remove it, "
                          "or use --reset_output_dir") from err


def _run_defining_values(params, source):
    values = {n: getattr(params, n, None) for n in config.RUN_DEFINING}
    values["image_size"] = source.image_size
    values["num_classes"] = source.num_classes
    return values


def check_output_dir(params, source):
    """Refuse an output_dir written by a run with other model/data flags,
    or (to train on) with other training images."""
    if params.task_mode == "train" and params.reset_output_dir:
        return
    old = _read_hparams(params.output_dir)
    if not old:
        return
    recorded = old.get("flags", {})
    now = _run_defining_values(params, source)
    diff = [f"--{n} (was {recorded[n]!r}, now {now[n]!r})"
            for n in now if n in recorded and recorded[n] != now[n]]
    if diff:
        raise ConfigError(
            f"--output_dir={params.output_dir} holds a run with other "
            f"settings: {', '.join(diff)}. Use another --output_dir, give "
            "the same values, or add --reset_output_dir to delete it")
    if params.task_mode in ("train", "finetune"):
        _check_same_split(params.output_dir, source)


def _check_same_split(output_dir, source):
    """The images a run trained on must not change under it: a file of an
    image folder that became unreadable (and is skipped) or was added would
    move which images are labeled."""
    path = os.path.join(output_dir, SPLITS_FILE)
    if not os.path.exists(path):
        return
    with open(path, encoding="utf-8") as f:
        recorded = json.load(f)
    now = json.loads(json.dumps(source.split_indices))
    if recorded == now:
        return
    changed = sorted(k for k in set(recorded) | set(now)
                     if recorded.get(k) != now.get(k))
    detail = ""
    gone = set(recorded.get("train_files", [])) - set(now.get("train_files",
                                                             []))
    new = set(now.get("train_files", [])) - set(recorded.get("train_files",
                                                             []))
    if gone or new:
        detail = (f" ({len(gone)} training files missing or unreadable, "
                  f"{len(new)} new; e.g. {sorted(gone or new)[0]})")
    raise ConfigError(
        f"--output_dir={output_dir} was trained on other images: "
        f"{', '.join(changed)} differ from its {SPLITS_FILE}{detail}. "
        "Restore the data, or train in another --output_dir (or add "
        "--reset_output_dir to start again)")


def _check_writable(directory):
    try:
        os.makedirs(directory, exist_ok=True)
        probe = os.path.join(directory, ".write_test")
        with open(probe, "w", encoding="utf-8") as f:
            f.write("ok")
        os.remove(probe)
    except OSError as err:
        raise ConfigError(f"--output_dir={directory} cannot be written "
                          f"({err}); choose a writable directory") from err


def prepare_output_dir(params, source, strategy):
    """Create (or reset) output_dir and record hparams.json and the splits."""
    out = params.output_dir
    if params.reset_output_dir and os.path.isdir(out):
        logging.info("--reset_output_dir: deleting %s", out)
        shutil.rmtree(out)
    _check_writable(out)
    record = {"flags": params.to_dict(),
              "resolved": {"mode": params.mode,
                           "replicas": strategy.num_replicas_in_sync}}
    # The data's own values, so a resumed run compares like with like.
    record["flags"].update(_run_defining_values(params, source))
    _write_json(os.path.join(out, HPARAMS_FILE), record)
    _write_json(os.path.join(out, SPLITS_FILE), source.split_indices)


def _write_json(path, obj):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
    os.replace(tmp, path)


def _export_dir(params):
    return params.export_dir or os.path.join(params.output_dir, "export")


def _summary(name, result):
    line = (f"{name}: test top-1 {result['test']['top1']:.4f}, "
            f"top-5 {result['test']['top5']:.4f} "
            f"({result['test']['count']} images)")
    if "val" in result:
        line += f"; validation top-1 {result['val']['top1']:.4f}"
    return line


class Run:
    """Everything one command builds, in the order the checks allow."""

    def __init__(self, params):
        params = config.validate(params)
        # Heavy imports after the cheap checks, so a typo fails in a second.
        import keras
        import tensorflow as tf

        from mpl_tf import distribute
        from mpl_tf.data import registry

        self.params = params
        if params.task_mode != "train" and not os.path.isdir(params.output_dir) \
                and not params.load_checkpoint:
            raise ConfigError(
                f"--task_mode={params.task_mode}: --output_dir="
                f"{params.output_dir} does not exist; train first or give "
                "--load_checkpoint")
        if params.reset_output_dir and \
                distribute.resolve_name(params) == "multi_worker":
            raise ConfigError("--reset_output_dir with --strategy=multi_worker "
                              "would race between workers; delete the "
                              "directory before launching instead")
        self.strategy = distribute.make_strategy(params)
        distribute.check_batch_sizes(params, self.strategy)
        self.source = registry.load_source(params)
        check_output_dir(params, self.source)
        self.teacher_probs = None
        if params.teacher_labels and params.task_mode != "label":
            from mpl_tf.data import teacher_labels
            self.teacher_probs = teacher_labels.read(
                params.teacher_labels,
                teacher_labels.identity(params, self.source))
        if params.deterministic:
            tf.config.experimental.enable_op_determinism()
        if params.use_bfloat16:
            keras.mixed_precision.set_global_policy("mixed_bfloat16")

    def main_loop(self, load_checkpoint=None):
        from mpl_tf import task
        from mpl_tf.training.loop import Loop

        p = self.params
        model = task.build_trainer(p, self.source, self.strategy)
        return Loop(p, self.strategy, model,
                    task.train_input(p, self.source, self.teacher_probs),
                    self.source, load_checkpoint=load_checkpoint)

    def finetune_loop(self, start_network):
        from mpl_tf import task
        from mpl_tf.training.loop import REMEDIES, Loop

        p = self.params
        model = task.build_finetuner(p, self.source, self.strategy,
                                     start_network)
        return Loop(p, self.strategy, model, task.finetune_input(p, self.source),
                    self.source,
                    directory=os.path.join(p.output_dir, FINETUNE_SUBDIR),
                    total_steps=p.finetune_steps,
                    remedy=REMEDIES["finetune"])

    def restore_main(self):
        loop = self.main_loop(load_checkpoint=self.params.load_checkpoint)
        restored = loop.restore()
        if restored is None:
            raise ConfigError(
                f"--task_mode={self.params.task_mode}: no readable checkpoint "
                f"in {loop.manager.directory}; train first or give "
                "--load_checkpoint")
        return loop, restored


def _finetune(run, start_loop):
    before = start_loop.evaluate_splits()
    print(_summary("before finetune", before))
    loop = run.finetune_loop(start_loop.model.eval_network)
    after = loop.run()
    return loop, {"before": before, "after": after}


def _deployed(run, finetuned):
    """What the export holds, in words: "EMA student", "finetuned student"..."""
    if finetuned:
        return f"student after {run.params.finetune_steps} finetune steps"
    role = "student" if run.params.mode == "mpl" else "model"
    return f"EMA {role}" if run.params.ema_decay > 0 else role


def _final(run, result, finetuned, path):
    """The console's last word: the exported network's scores."""
    print(_summary(f"final (the exported {_deployed(run, finetuned)}, "
                   f"{path})", result))


def _export(run, loop):
    import tensorflow as tf

    from mpl_tf import export

    target = _export_dir(run.params)
    if not loop.chief:  # every worker saves; only the chief's copy stays
        scratch = distribute_scratch(run)
        export.export(loop.model.eval_network, os.path.join(scratch, "export"))
        shutil.rmtree(scratch, ignore_errors=True)
        return target
    print(f"exporting the deployed network to {target} (SavedModel and "
          ".keras; this traces the serving function and can take a minute)",
          flush=True)
    try:
        path = export.export(loop.model.eval_network, target)
    except (OSError, tf.errors.OpError) as err:
        raise StorageError(
            f"cannot write the export to {target} ({err}); an earlier "
            "export there is intact. Free space and rerun with "
            "--task_mode=export") from err
    print(f"exported SavedModel: {path}")
    return path


def distribute_scratch(run):
    """A non-chief worker's own directory, outside what the chief rewrites."""
    from mpl_tf import distribute

    return distribute.worker_scratch_dir(run.params.output_dir, run.strategy)


def train(run):
    from mpl_tf import distribute

    p = run.params
    if distribute.is_chief(run.strategy):
        prepare_output_dir(p, run.source, run.strategy)
    loop = run.main_loop(load_checkpoint=p.load_checkpoint)
    result = {"test": None}
    result.update(loop.run())
    result["start_step"] = loop.start_step
    if result.get("teacher"):
        print(_summary("final teacher", result["teacher"]))
    final, deployed = loop, result
    if p.finetune_steps > 0:
        final, result["finetune"] = _finetune(run, loop)
        deployed = result["finetune"]["after"]
    result["export"] = _export(run, final)
    result["trainer"] = final.model
    _final(run, deployed, p.finetune_steps > 0, result["export"])
    return result


def finetune(run):
    loop, restored = run.restore_main()
    logging.info("finetuning from %s", restored)
    final, result = _finetune(run, loop)
    result["export"] = _export(run, final)
    result["trainer"] = final.model
    _final(run, result["after"], True, result["export"])
    return result


def evaluate(run):
    p = run.params
    loop, newest = run.restore_main()
    paths = list(loop.manager.checkpoints) if p.eval_all_checkpoints else [newest]
    results = []
    for path in paths:
        loop.manager.checkpoint.restore(path).assert_existing_objects_matched()
        record = {"checkpoint": path,
                  "step": int(loop.model.global_step.numpy()),
                  **loop.evaluate_splits()}
        print(_summary(f"{path} (step {record['step']})", record))
        results.append(record)
    with_val = [r for r in results if "val" in r]
    best = max(with_val, key=lambda r: r["val"]["top1"]) if with_val else None
    summary = {"checkpoints": results, "best_by_validation": best,
               "selection": ("validation top-1" if best else
                             "none: no validation split (set --num_val)")}
    summary.update(results[-1])
    _write_json(os.path.join(p.output_dir, "eval.json"), summary)
    if best:
        print(f"best checkpoint by validation: {best['checkpoint']} "
              f"(validation top-1 {best['val']['top1']:.4f}, test top-1 "
              f"{best['test']['top1']:.4f})")
    return summary


def export_only(run):
    loop, restored = run.restore_main()
    path = _export(run, loop)
    return {"export": path, "checkpoint": restored, "trainer": loop.model}


def store_teacher_labels(run):
    from mpl_tf.data import teacher_labeling

    loop, restored = run.restore_main()
    directory, per_second = teacher_labeling.label(
        run.params, run.source, loop.model.eval_network, restored,
        loop.model.global_step.numpy())
    print(f"stored the class distributions of {restored} in {directory} "
          f"({per_second:.0f} images/s)")
    return {"teacher_labels": directory, "images_per_second": per_second,
            "checkpoint": restored}


TASKS = {"train": train, "finetune": finetune, "eval": evaluate,
         "export": export_only, "label": store_teacher_labels}


def run(params):
    """Run one task; returns a dict of results. Raises ConfigError."""
    run_ = Run(params)  # validates, task_mode included
    return TASKS[params.task_mode](run_)


def _check_flagfiles(argv):
    """absl's own message for a missing flagfile is a traceback."""
    for arg in argv[1:]:
        if arg.startswith("--flagfile="):
            path = arg.split("=", 1)[1]
            if not os.path.isfile(path):
                print(f"mpl_tf: error: --flagfile={path}: no such file (run "
                      "from the repository root, or give the full path)",
                      file=sys.stderr)
                sys.exit(2)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    console.configure_logging(mpl_flags.FLAGS)  # before TensorFlow loads
    from mpl_tf.training.loop import NonFiniteError
    from mpl_tf.training.preemption import Preempted

    # How each way a run can end early is told: (prefix, exit status).
    endings = {ConfigError: ("error", 2), NonFiniteError: ("stopped", 3),
               StorageError: ("error", 4), Preempted: ("preempted", 143)}
    try:
        run(mpl_flags.from_flags())
    except tuple(endings) as err:
        word, status = next(v for k, v in endings.items()
                            if isinstance(err, k))
        print(f"mpl_tf: {word}: {err}", file=sys.stderr)
        sys.exit(status)


def run_cli():
    console.tensorflow_defaults()  # before TensorFlow is imported
    if any(a in ("--help", "-h", "-?", "--helpshort") for a in sys.argv[1:]):
        print(__doc__.strip(), end="\n\n")
        print(mpl_flags.help_text())
        return
    _check_flagfiles(sys.argv)
    app.run(main)


if __name__ == "__main__":
    run_cli()
