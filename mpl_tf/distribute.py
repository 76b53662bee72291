"""Choose the tf.distribute strategy from --strategy / --use_tpu / --master."""

import glob
import json
import os

from absl import logging
import tensorflow as tf

from mpl_tf.errors import ConfigError


def split_cpu(num_replicas):
    """Make the CPU look like `num_replicas` devices (before TF starts)."""
    if num_replicas <= 1:
        return
    cpus = tf.config.list_physical_devices("CPU")
    try:
        tf.config.set_logical_device_configuration(
            cpus[0], [tf.config.LogicalDeviceConfiguration()] * num_replicas)
    except RuntimeError as err:  # TF already initialised with another split
        if len(tf.config.list_logical_devices("CPU")) != num_replicas:
            raise ConfigError(
                f"--num_cpu_replicas={num_replicas}: TensorFlow was already "
                "started with a different number of CPU devices") from err


def _tpu_strategy(master):
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(
            tpu=master or "local")
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, RuntimeError, tf.errors.OpError) as err:
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise ConfigError(
            f"--strategy=tpu/--use_tpu: no TPU reachable at "
            f"--master={master or 'local'!r} ({reason[:200]}); on a CPU or "
            "GPU machine drop --use_tpu or use --strategy=auto") from err
    return tf.distribute.TPUStrategy(resolver)


def tpu_present():
    """A cheap look for a TPU: Colab's or a Cloud TPU VM's markers."""
    return bool(os.environ.get("COLAB_TPU_ADDR") or os.environ.get("TPU_NAME")
                or glob.glob("/dev/accel*") or glob.glob("/dev/vfio/[0-9]*"))


def resolve_name(params):
    """Which strategy `auto` means on this machine: a TPU if one is there,
    else all local GPUs if more than one, else the default strategy (one
    CPU or GPU), or mirrored CPU replicas with --num_cpu_replicas > 1."""
    name = params.strategy
    if params.use_tpu:
        return "tpu"
    if name != "auto":
        return name
    if tpu_present():
        return "tpu"
    if len(tf.config.list_physical_devices("GPU")) > 1:
        return "mirrored"
    if params.num_cpu_replicas > 1:
        return "mirrored"
    return "default"


def make_strategy(params):
    name = resolve_name(params)
    if name == "tpu":
        return _tpu_strategy(params.master)
    if name == "multi_worker":
        if "TF_CONFIG" not in os.environ:
            raise ConfigError("--strategy=multi_worker needs the TF_CONFIG "
                              "environment variable (cluster and task)")
        json.loads(os.environ["TF_CONFIG"])
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "mirrored":
        split_cpu(params.num_cpu_replicas)
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
        logging.info("MirroredStrategy on %s", devices)
        return tf.distribute.MirroredStrategy(devices)
    return tf.distribute.get_strategy()


def check_batch_sizes(params, strategy):
    replicas = strategy.num_replicas_in_sync
    for name in ("train_batch_size", "eval_batch_size"):
        value = getattr(params, name)
        if value % replicas:
            raise ConfigError(
                f"--{name}={value} is not divisible by the {replicas} "
                f"replicas in sync; use a multiple of {replicas}")


def task_identity(strategy):
    """(task_type, task_id) of this process; (None, 0) outside a cluster."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not getattr(resolver, "task_type", None):
        return None, 0
    return resolver.task_type, resolver.task_id or 0


def is_chief(strategy):
    """Only the chief writes logs, hparams, the export and real checkpoints.

    With MultiWorkerMirroredStrategy every worker must still take part in
    saving (the save is collective); the others write to a scratch
    directory (`worker_scratch_dir`) that is deleted afterwards.
    """
    task_type, task_id = task_identity(strategy)
    if task_type is None or task_type == "chief":
        return True
    resolver = strategy.cluster_resolver
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return task_type == "worker" and task_id == 0 and not has_chief


def worker_scratch_dir(directory, strategy):
    task_type, task_id = task_identity(strategy)
    return os.path.join(directory, f".scratch_{task_type}_{task_id}")
