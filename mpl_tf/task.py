"""Assemble a run from its parameters: data, networks, optimizers, step.

Kept apart from the loop so tests and benchmarks can build exactly what the
CLI builds.
"""

import dataclasses

import keras

from mpl_tf import config
from mpl_tf.data.augment.ops import augment_config
from mpl_tf.data.pipeline import TrainInput
from mpl_tf.models import registry
from mpl_tf.models.reduced_teacher import build_reduced_teacher
from mpl_tf.schedules import WarmupDecay
from mpl_tf.training.mpl import MPLModel
from mpl_tf.training.optimizer import make_optimizer
from mpl_tf.training.reduced_mpl import ReducedMPLModel
from mpl_tf.training.supervised import SupervisedModel
from mpl_tf.training.uda import UDAModel


def sync_batch_norm(params, num_replicas):
    """--batch_norm_batch_size larger than a replica's labeled batch asks for
    statistics over more images than one replica holds: synchronise them
    over all replicas (the closest Keras has to the reference's BN groups).
    """
    per_replica = params.train_batch_size // max(num_replicas, 1)
    return (num_replicas > 1 and params.batch_norm_batch_size is not None
            and params.batch_norm_batch_size > per_replica)


def model_config(params, source, num_replicas=1):
    return registry.ModelConfig(
        model_type=params.model_type, num_classes=source.num_classes,
        image_size=source.image_size, channels=source.channels,
        mean=tuple(source.mean), std=tuple(source.std),
        batch_norm_decay=params.batch_norm_decay,
        batch_norm_epsilon=params.batch_norm_epsilon,
        dense_dropout_rate=params.dense_dropout_rate,
        sync_batch_norm=sync_batch_norm(params, num_replicas))


def _scaled(lr, params):
    # The reference's learning rates are per 256 labeled images.
    return lr * params.train_batch_size / 256.0


def _schedule(params, base_lr, warmup, wait=0):
    return WarmupDecay(_scaled(base_lr, params), params.num_train_steps,
                       warmup_steps=warmup, wait_steps=wait,
                       decay=params.lr_decay_type,
                       decay_rate=params.lr_decay_rate,
                       decay_steps=params.num_decay_steps)


def build_trainer(params, source, strategy):
    """The TrainerModel for the dataset's mode, built in the strategy scope."""
    cfg = config.step_config(params)
    mcfg = model_config(params, source, strategy.num_replicas_in_sync)
    mode = params.mode
    ema = (lambda name: registry.build(mcfg, name)) if params.ema_decay > 0 \
        else (lambda name: None)
    with strategy.scope():
        keras.utils.set_random_seed(params.seed)
        if mode == "mpl":
            if params.teacher_labels:  # Reduced MPL: no large teacher here
                teacher = build_reduced_teacher(source.num_classes,
                                                params.reduced_teacher_hidden)
                cls = ReducedMPLModel
            else:
                teacher = registry.build(dataclasses.replace(
                    mcfg, model_type=params.teacher_model_type
                    or params.model_type), "teacher")
                cls = MPLModel
            student = registry.build(mcfg, "student")
            model = cls(
                cfg, teacher, student,
                make_optimizer(_schedule(params, params.mpl_teacher_lr,
                                         params.mpl_teacher_lr_warmup_steps),
                               params.optim_type, "teacher_optimizer"),
                make_optimizer(_schedule(params, params.mpl_student_lr,
                                         params.mpl_student_lr_warmup_steps,
                                         params.mpl_student_lr_wait_steps),
                               params.optim_type, "student_optimizer"),
                ema_network=ema("ema_student"))
        else:
            network = registry.build(
                mcfg, "teacher" if mode == "uda" else "model")
            opt = make_optimizer(
                _schedule(params, params.lr, params.num_warmup_steps),
                params.optim_type, "optimizer")
            cls = UDAModel if mode == "uda" else SupervisedModel
            model = cls(cfg, network, opt, ema_network=ema("ema_model"))
        model.compile()
        model.build_optimizers()
    return model


def augmentation(params, source):
    """The source's augmentation with --hflip, --augment_magnitude,
    --randaugment and --cutout_fraction."""
    return augment_config(source, {"hflip": params.hflip,
                                   "magnitude": params.augment_magnitude,
                                   "randaugment": params.randaugment,
                                   "cutout_fraction": params.cutout_fraction})


def train_input(params, source, teacher_probs=None):
    labeled_view = ("strong" if params.mode == "supervised"
                    and params.use_augment else "weak")
    return TrainInput(source, augmentation(params, source),
                      params.mode, params.train_batch_size, params.uda_data,
                      params.seed, labeled_view=labeled_view,
                      teacher_probs=teacher_probs)


def build_finetuner(params, source, strategy, start_network):
    """The finetune stage: a copy of `start_network` (the EMA student) trained
    on the labeled images alone with SGD Nesterov at a constant
    --finetune_lr and no weight decay (docs/design.md, section 4)."""
    cfg = dataclasses.replace(config.step_config(params), weight_decay=0.0,
                              ema_decay=0.0)
    mcfg = model_config(params, source, strategy.num_replicas_in_sync)
    with strategy.scope():
        network = registry.build(mcfg, "finetuned")
        network.set_weights(start_network.get_weights())
        opt = make_optimizer(
            WarmupDecay(params.finetune_lr, params.finetune_steps,
                        decay="constant"), "momentum", "finetune_optimizer")
        model = SupervisedModel(cfg, network, opt)
        model.compile()
        model.build_optimizers()
    return model


def finetune_input(params, source):
    return TrainInput(source, augmentation(params, source),
                      "supervised", params.train_batch_size, params.uda_data,
                      params.seed)
