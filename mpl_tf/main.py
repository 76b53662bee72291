"""Command line: python -m mpl_tf.main --flagfile=flags/digits_50_mpl.cfg

task_mode train: train (resuming from output_dir's newest checkpoint), then
evaluate on the test split and export the deployed network.
task_mode eval: evaluate the newest checkpoint, write eval.json.
task_mode export: export the newest checkpoint.

Every check of flags and data runs before anything is written.
"""

import json
import os
import shutil
import sys

from absl import app
from absl import logging

from mpl_tf import flags as mpl_flags
from mpl_tf import params as params_lib
from mpl_tf.errors import ConfigError

HPARAMS_FILE = "hparams.json"


def _read_hparams(output_dir):
    path = os.path.join(output_dir, HPARAMS_FILE)
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def check_output_dir(params):
    """Refuse an output_dir trained with other model/data flags."""
    if params.task_mode == "train" and params.reset_output_dir:
        return
    old = _read_hparams(params.output_dir)
    if not old:
        return
    old_flags = old.get("flags", old)
    diff = [f"--{n} (was {old_flags.get(n)!r}, now {getattr(params, n)!r})"
            for n in mpl_flags.RUN_DEFINING_FLAGS
            if n in old_flags and old_flags[n] != getattr(params, n)
            and (n in params.explicit or n in ("dataset_name", "model_type"))]
    if diff:
        raise ConfigError(
            f"--output_dir={params.output_dir} holds a run with other "
            f"settings: {', '.join(diff)}. Use another --output_dir, or "
            "--reset_output_dir to delete it")


def prepare_output_dir(params, source, strategy):
    """Create (or reset) output_dir and record hparams.json and the splits."""
    out = params.output_dir
    if params.reset_output_dir and os.path.isdir(out):
        logging.info("--reset_output_dir: deleting %s", out)
        shutil.rmtree(out)
    try:
        os.makedirs(out, exist_ok=True)
        probe = os.path.join(out, ".write_test")
        with open(probe, "w", encoding="utf-8") as f:
            f.write("ok")
        os.remove(probe)
    except OSError as err:
        raise ConfigError(f"--output_dir={out} cannot be written ({err}); "
                          "choose a writable directory") from err
    record = {"flags": params.to_dict(),
              "resolved": {"num_classes": source.num_classes,
                           "image_size": source.image_size,
                           "mode": params.mode,
                           "replicas": strategy.num_replicas_in_sync}}
    # Fill in the data's own values so a resumed run compares like with like.
    record["flags"]["image_size"] = source.image_size
    record["flags"]["num_classes"] = source.num_classes
    _write_json(os.path.join(out, HPARAMS_FILE), record)
    _write_json(os.path.join(out, "splits.json"), source.split_indices)


def _write_json(path, obj):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
    os.replace(tmp, path)


def _export_dir(params):
    return params.export_dir or os.path.join(params.output_dir, "export")


def run(params):
    """Run one task; returns a dict of results. Raises ConfigError."""
    params_lib.validate(params)
    # Heavy imports after the cheap checks, so a typo fails in a second.
    import keras  # pylint: disable=import-outside-toplevel

    from mpl_tf.data import loader as data_lib  # pylint: disable=import-outside-toplevel
    from mpl_tf import distribute, export, task  # pylint: disable=import-outside-toplevel
    from mpl_tf.training import checkpoint as ckpt_lib  # pylint: disable=import-outside-toplevel
    from mpl_tf.training.loop import Loop  # pylint: disable=import-outside-toplevel

    check_output_dir(params)
    strategy = distribute.make_strategy(params)
    distribute.check_batch_sizes(params, strategy)
    source = data_lib.load_source(params)
    if params.use_bfloat16:
        keras.mixed_precision.set_global_policy("mixed_bfloat16")

    if params.task_mode != "train":
        if not os.path.isdir(os.path.join(params.output_dir,
                                          ckpt_lib.CKPT_SUBDIR)) \
                and not params.load_checkpoint:
            raise ConfigError(
                f"--task_mode={params.task_mode}: no checkpoint in "
                f"--output_dir={params.output_dir}; train first or give "
                "--load_checkpoint")
    else:
        prepare_output_dir(params, source, strategy)

    model = task.build_trainer(params, source, strategy)
    loop = Loop(params, strategy, model, task.train_input(params, source),
                source)
    if params.task_mode == "train":
        result = loop.run()
        path = export.export(model.eval_network, _export_dir(params))
        print(f"final test accuracy: top-1 {result['top1']:.4f}, "
              f"top-5 {result['top5']:.4f} ({result['count']} images)")
        print(f"exported SavedModel: {path}")
        return {"test": result, "export": path, "trainer": model,
                "start_step": loop.start_step, "restored": loop.history}

    restored = loop.restore()
    if restored is None:
        raise ConfigError(
            f"--task_mode={params.task_mode}: no readable checkpoint in "
            f"{loop.manager.directory}; train first or give --load_checkpoint")
    if params.task_mode == "export":
        path = export.export(model.eval_network, _export_dir(params))
        print(f"exported SavedModel: {path} (from {restored})")
        return {"export": path, "checkpoint": restored, "trainer": model}
    result = {"checkpoint": restored, "step": int(model.global_step.numpy()),
              "test": loop.evaluate("test")}
    if source.val is not None:
        result["val"] = loop.evaluate("val")
    _write_json(os.path.join(params.output_dir, "eval.json"), result)
    print(f"test accuracy of {restored}: top-1 {result['test']['top1']:.4f}, "
          f"top-5 {result['test']['top5']:.4f}")
    return result


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    try:
        run(params_lib.from_flags())
    except ConfigError as err:
        print(f"mpl_tf: error: {err}", file=sys.stderr)
        sys.exit(2)


def run_cli():
    app.run(main)


if __name__ == "__main__":
    run_cli()
