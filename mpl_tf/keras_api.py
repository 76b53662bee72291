"""Meta Pseudo Labels, UDA and supervised training as Keras models you `fit`.

    mpl = mpl_tf.MetaPseudoLabels(teacher=my_teacher, student=my_student,
                                  ema_decay=0.995, uda_weight=8.0)
    mpl.compile()                      # SGD Nesterov 0.9, or your optimizers
    mpl.fit(mpl_tf.data.train_dataset(x_l, y_l, x_u), steps_per_epoch=...)
    mpl.evaluate(x_test, y_test)       # the EMA student's loss and accuracy
    mpl.student.save("student.keras")

The classes are the CLI's step classes (MPLModel, UDAModel,
SupervisedModel) with a Keras face: hyper-parameters as constructor
arguments named as the flags, optimizers at `compile`, an EMA twin of the
deployed network, `test_step`, `call` (the evaluated network), saving. The
train step is the CLI's own `train_step`, unchanged: Keras runs it under
`strategy.run` and its logs are the CLI's scalars (global values, the same on
every replica, which Keras' per-replica reduction -- a mean, or the first
replica's value on a TPU -- leaves as they are), plus `loss`.
"""

import inspect

import keras
import numpy as np
import tensorflow as tf

from mpl_tf.data import pipeline
from mpl_tf.models.reduced_teacher import build_reduced_teacher
from mpl_tf.training import ema as ema_lib
from mpl_tf.training import nonfinite
from mpl_tf import compat
from mpl_tf import config
from mpl_tf import evaluate
from mpl_tf.config import StepConfig
from mpl_tf.training.mpl import MPLModel
from mpl_tf.training.optimizer import make_optimizer
from mpl_tf.training.reduced_mpl import ReducedMPLModel
from mpl_tf.training.supervised import SupervisedModel
from mpl_tf.training.uda import UDAModel

# compile()'s default learning rates: the CLI's (the flags' base rates per
# 256 labeled images) at its default batch size, held constant.
_RUN = config.RunConfig()
MPL_TEACHER_LR = _RUN.mpl_teacher_lr * _RUN.train_batch_size / 256
MPL_STUDENT_LR = _RUN.mpl_student_lr * _RUN.train_batch_size / 256
LR = _RUN.lr * _RUN.train_batch_size / 256

# The step options each class takes (config.StepConfig; defaults as there).
_SUPERVISED_ARGS = ("label_smoothing", "weight_decay", "grad_bound",
                    "ema_decay", "seed")
_UDA_ARGS = _SUPERVISED_ARGS + ("uda_weight", "uda_temp", "uda_threshold",
                                "uda_steps")
_MPL_ARGS = _UDA_ARGS + ("mpl_feedback", "mpl_label", "mpl_label_view",
                         "mpl_label_threshold", "mpl_baseline_decay", "mpl_low_memory",
                         "mpl_recompute_teacher", "mpl_feedback_pairing")
_REDUCED_ARGS = _SUPERVISED_ARGS + (
    "mpl_feedback", "mpl_label", "mpl_baseline_decay",
    "mpl_feedback_pairing")


def reference_optimizer(learning_rate, name=None):
    """The reference's optimizer: SGD with Nesterov momentum 0.9.

    `learning_rate`: a float or any `keras.optimizers.schedules.
    LearningRateSchedule` of the global step, e.g. `mpl_tf.WarmupDecay(
    0.1 * batch_size / 256, total_steps, warmup_steps=...)`: the CLI's
    schedule (its learning rates are per 256 labeled images)."""
    return make_optimizer(learning_rate, "momentum", name or "sgd_nesterov")


def _prepare_optimizer(optimizer, default_lr, name):
    """None -> the reference's optimizer at `default_lr`; a name or config
    -> keras.optimizers.get. Any Keras optimizer receives gradients the
    train step has already summed over replicas (then weight-decayed and
    clipped by global norm): its own all-reduce is switched off. It takes
    the role's `name` (its checkpoint key)."""
    if optimizer is None:
        return reference_optimizer(default_lr, name)
    if isinstance(optimizer, (str, dict)):
        optimizer = keras.optimizers.get(optimizer)
    if not isinstance(optimizer, keras.optimizers.Optimizer):
        raise TypeError(f"{name}: expected a keras.optimizers.Optimizer, got "
                        f"{type(optimizer).__name__}")
    compat.skip_optimizer_all_reduce(optimizer)
    # Named after its role, as the command line's: its key in checkpoints.
    optimizer.name = name
    return optimizer


def _check_network(network, role):
    if not isinstance(network, keras.layers.Layer):
        raise TypeError(f"{role}: expected a Keras model, got "
                        f"{type(network).__name__}")
    if not network.built or not network.trainable_weights:
        raise ValueError(
            f"{role} {network.name!r} has no weights yet: build it first "
            "(give it a keras.Input, or call it once on a batch of images)")


def _twin(network, given, role):
    """The EMA twin of `network`: `given`, or a clone (Sequential,
    functional, or a subclassed model with get_config)."""
    if given is None:
        try:
            given = keras.models.clone_model(network)
        except Exception as err:
            raise ValueError(
                f"cannot clone {role} {network.name!r} for its moving "
                f"average ({type(err).__name__}: {err}); pass a second, "
                f"identically built network as ema_{role}=") from err
    pairs = list(zip(given.weights, network.weights))
    if len(given.weights) != len(network.weights) or any(
            a.shape != b.shape for a, b in pairs):
        raise ValueError(f"ema_{role} {given.name!r} must have the weights of "
                         f"{role} {network.name!r} (same layers, same order)")
    ema_lib.copy(given, network)
    return given


def _step_config(cls, values):
    """The StepConfig of `cls`'s step arguments, checked by the one rule
    book (config.check)."""
    unknown = set(values) - set(cls._STEP_ARGS)
    if unknown:
        raise TypeError(f"{cls.__name__}() got unexpected arguments: "
                        f"{', '.join(sorted(unknown))}")
    return config.check(StepConfig(**values), prefix="")


def _with_step_signature(cls, positional, keywords):
    """Show `cls`'s step arguments, with their defaults, in its signature
    (help(), IDEs, inspect) though `__init__` takes them as **step_args.
    `positional`: [(name, default)] before them; `keywords`: after."""
    kind = inspect.Parameter
    defaults = StepConfig()
    params = [kind(name, kind.POSITIONAL_OR_KEYWORD, default=default)
               for name, default in positional]
    params += [kind(name, kind.KEYWORD_ONLY, default=default)
               for name, default in keywords]
    params += [kind(name, kind.KEYWORD_ONLY, default=getattr(defaults, name))
               for name in cls._STEP_ARGS]
    params.append(kind("name", kind.KEYWORD_ONLY, default=None))
    cls.__signature__ = inspect.Signature(params)


class _StartDataAtModelStep(keras.callbacks.Callback):
    """Moves a `mpl_tf.data` training dataset to the model's step when
    training begins: after BackupAndRestore restored the model, before the
    dataset's iterator is created."""

    def __init__(self, start_step):
        super().__init__()
        self.start_step = start_step

    def on_train_begin(self, logs=None):
        self.start_step.assign(tf.cast(self.model.global_step, tf.int64))


class _KerasTrainer:
    """What the Keras face adds to a step class (mixed in before it)."""

    _STEP_ARGS = ()

    def _init_keras(self, cfg, **other_args):
        # What `evaluate` reports: the deployed (EMA) network's mean
        # cross-entropy and accuracy.
        self._eval_loss = keras.metrics.Mean(name="loss")
        self._eval_accuracy = keras.metrics.Mean(name="accuracy")
        self._eval_top5 = keras.metrics.Mean(name="top5_accuracy")
        # get_config: every step argument, and any other constructor one.
        self._step_args = {name: getattr(cfg, name)
                           for name in self._STEP_ARGS}
        self._step_args.update(other_args)
        self._compile_args = {}
        self.built = True

    # -- what Keras calls ----------------------------------------------------
    def call(self, inputs, training=False):
        """Logits of the evaluated network (the EMA twin if any)."""
        return self.eval_network(inputs, training=training)

    @property
    def metrics(self):
        """Reset by Keras at each epoch's start (and each evaluate's)."""
        return [self._eval_loss, self._eval_accuracy, self._eval_top5,
                *super().metrics]

    def train_step(self, data):
        """The CLI's train step, plus `loss` (see `fit_loss`): NaN when the
        step was skipped because a check was not finite, so that
        keras.callbacks.TerminateOnNaN sees every skip. The window
        statistics are the CLI's, over the epoch so far."""
        logs = super().train_step(data)
        loss = self.fit_loss(logs)
        logs["loss"] = tf.where(logs[nonfinite.CAUSE] > 0,
                                tf.constant(float("nan"), loss.dtype), loss)
        return logs

    def test_step(self, data):
        """The evaluated network's loss, accuracy and top-5 accuracy
        (evaluate.batch_totals: the command line's rule)."""
        images, labels, _ = keras.utils.unpack_x_y_sample_weight(data)
        logits = self(tf.cast(images, self.eval_network.compute_dtype),
                      training=False)
        top1, top5, loss, count = tf.unstack(
            evaluate.batch_totals(logits, labels))
        weight = tf.maximum(count, 1.0)
        for metric, total in ((self._eval_loss, loss),
                              (self._eval_accuracy, top1),
                              (self._eval_top5, top5)):
            metric.update_state(total / weight, sample_weight=count)
        return {m.name: m.result()
                for m in (self._eval_loss, self._eval_accuracy,
                          self._eval_top5)}

    def fit(self, *args, **kwargs):
        """keras.Model.fit. A dataset from `mpl_tf.data` starts at the
        model's step (so a fit resumed by BackupAndRestore, or a second
        fit, continues the batch sequence); `shuffle` defaults to False
        (the batches are already seeded draws)."""
        bound = inspect.signature(keras.Model.fit).bind(self, *args, **kwargs)
        arguments = dict(bound.arguments)
        arguments.pop("self")
        arguments.setdefault("shuffle", False)
        self._check_labels(getattr(arguments.get("x"), pipeline.LABELS_ATTR,
                                   None))
        start = getattr(arguments.get("x"), pipeline.START_STEP_ATTR, None)
        callbacks = arguments.get("callbacks")
        if start is not None and not isinstance(
                callbacks, keras.callbacks.CallbackList):
            arguments["callbacks"] = [*(callbacks or []),
                                      _StartDataAtModelStep(start)]
        return super().fit(**arguments)

    def _check_labels(self, labels):
        """Refuse, before training, labels the deployed network has no
        output for (its loss would silently be 0 for them)."""
        classes = self.deployed.output_shape[-1]
        if labels is None or not classes:
            return
        outside = np.flatnonzero((labels < 0) | (labels >= classes))
        if len(outside):
            i = int(outside[0])
            raise ValueError(
                f"labeled_labels[{i}] = {labels[i]} is not one of the "
                f"{classes} classes of {self.deployed.name!r} (0 to "
                f"{classes - 1}); {len(outside)} labels are outside them")

    # -- compile -------------------------------------------------------------
    def _compile(self, optimizers, steps_per_execution, jit_compile,
                 run_eagerly):
        """`optimizers`: [(compile argument, attribute, optimizer)]."""
        for _, attribute, optimizer in optimizers:
            setattr(self, attribute, optimizer)
        with self.distribute_strategy.scope():
            super().compile(steps_per_execution=steps_per_execution,
                            jit_compile=jit_compile, run_eagerly=run_eagerly)
            for optimizer, network in self.optimizers():
                optimizer.build(network.trainable_variables)
        self._compile_args = {
            "steps_per_execution": steps_per_execution,
            "jit_compile": jit_compile, "run_eagerly": run_eagerly,
            **{argument: keras.optimizers.serialize(optimizer)
               for argument, _, optimizer in optimizers}}

    def get_compile_config(self):
        return dict(self._compile_args) if self.compiled else None

    def compile_from_config(self, config):
        self.compile(**config)

    # -- saving --------------------------------------------------------------
    def _extra_state(self):
        """Step state that is neither a network's weights nor an optimizer's
        (Keras saves those by walking this model's attributes): the MPL
        baseline, the non-finite step counters, dropout's random state."""
        return {name: value for name, value in self.checkpoint_items().items()
                if not isinstance(value, (keras.layers.Layer,
                                          keras.optimizers.Optimizer))}

    def save_own_variables(self, store):
        super().save_own_variables(store)
        for name, variable in self._extra_state().items():
            store[name] = variable.numpy()

    def load_own_variables(self, store):
        for name, variable in self._extra_state().items():
            variable.assign(store[name])

    def _networks_config(self):
        raise NotImplementedError

    def get_config(self):
        return {"name": self.name, **self._networks_config(),
                **self._step_args}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key, value in config.items():
            if isinstance(value, dict) and "class_name" in value:
                config[key] = keras.saving.deserialize_keras_object(value)
        return cls(**config)


@keras.saving.register_keras_serializable(package="mpl_tf")
class MetaPseudoLabels(_KerasTrainer, MPLModel):
    """Meta Pseudo Labels with your teacher and student (Keras models from
    float32 images on the 0..255 scale to logits; the same classes).

    The step arguments are the CLI's flags (README, "Flags"); their
    defaults are the flags'. With `ema_decay` > 0 the evaluated and
    deployed network is a moving average of the student (`ema_student`;
    pass `ema_student=` for a subclassed student that cannot be cloned).
    Build the model (and its networks) inside `strategy.scope()` to train
    under a tf.distribute strategy.

    Logs: the CLI's scalars (`cross_entropy/teacher_on_l`,
    `cross_entropy/student_on_u`, `mpl/feedback`, `lr/student`, ...),
    `mpl/feedback_window_mean` and `_window_std` over the epoch so far (the
    CLI's over each --log_every window: give `fit` that `steps_per_epoch`
    for the same numbers) and `loss` = teacher_on_l + uda/weight *
    teacher_on_u + student_on_u, the two objectives the step descends
    (without the teacher's feedback term), NaN for a step that was skipped because something was not
    finite. `evaluate` reports `loss` and `accuracy` of the evaluated
    network (EarlyStopping on `val_accuracy` needs `mode="max"`, as for
    any Keras model that tracks its own metrics).
    """

    _STEP_ARGS = _MPL_ARGS

    def __init__(self, teacher, student, *, ema_student=None, name=None,
                 **step_args):
        cfg = _step_config(type(self), step_args)
        _check_network(teacher, "teacher")
        _check_network(student, "student")
        ema = (_twin(student, ema_student, "student") if cfg.ema_decay > 0
               else None)
        super().__init__(cfg, teacher, student, None, None, ema_network=ema,
                         name=name or "meta_pseudo_labels")
        self._init_keras(cfg)

    @property
    def ema_student(self):
        """The moving average of the student, or None (ema_decay=0)."""
        return self.ema_network

    def compile(self, teacher_optimizer=None, student_optimizer=None, *,
                steps_per_execution=1, jit_compile="auto", run_eagerly=False):
        """Optimizers: any Keras optimizer (learning rate a float or a
        LearningRateSchedule of the step), a name, or None for SGD with
        Nesterov momentum 0.9 at the flags' default rate (0.1, constant)."""
        if teacher_optimizer is not None and \
                teacher_optimizer is student_optimizer:
            raise ValueError("the teacher and the student need two optimizer "
                             "objects (each keeps its own slots)")
        self._compile([
            ("teacher_optimizer", "teacher_optimizer", _prepare_optimizer(
                teacher_optimizer, MPL_TEACHER_LR, "teacher_optimizer")),
            ("student_optimizer", "student_optimizer", _prepare_optimizer(
                student_optimizer, MPL_STUDENT_LR, "student_optimizer"))],
            steps_per_execution, jit_compile, run_eagerly)

    @staticmethod
    def fit_loss(logs):
        return (logs["cross_entropy/teacher_on_l"]
                + logs["uda/weight"] * logs["cross_entropy/teacher_on_u"]
                + logs["cross_entropy/student_on_u"])

    def _networks_config(self):
        return {"teacher": keras.saving.serialize_keras_object(self.teacher),
                "student": keras.saving.serialize_keras_object(self.student)}


@keras.saving.register_keras_serializable(package="mpl_tf")
class ReducedMetaPseudoLabels(MetaPseudoLabels, ReducedMPLModel):
    """Reduced Meta Pseudo Labels: a large teacher's stored class
    distributions (computed once, e.g. `softmax(teacher.predict(images))`)
    and a small reduced teacher on them, a residual MLP on log p that
    starts as the identity (README, "Reduced MPL"), teach your student.

    The training batches carry the stored distributions: give
    `mpl_tf.data.train_dataset(...)` `teacher_probs=(labeled, unlabeled)`.
    `reduced_teacher`: your own network from log-probabilities [b, C] to
    logits, or None for `ReducedTeacher(num_classes, reduced_teacher_hidden)`.
    The other arguments, `compile`, the logs and `evaluate` are
    MetaPseudoLabels' (the reduced teacher has no UDA term: uda/weight 0).
    """

    _STEP_ARGS = _REDUCED_ARGS

    def __init__(self, student, num_classes=None, *, reduced_teacher=None,
                 reduced_teacher_hidden=_RUN.reduced_teacher_hidden,
                 ema_student=None, name=None, **step_args):
        cfg = _step_config(type(self), step_args)
        _check_network(student, "student")
        if reduced_teacher is None:
            if num_classes is None:
                raise ValueError("num_classes is needed to build the "
                                 "reduced teacher (or pass reduced_teacher=)")
            reduced_teacher = build_reduced_teacher(num_classes,
                                                    reduced_teacher_hidden)
        _check_network(reduced_teacher, "reduced_teacher")
        ema = (_twin(student, ema_student, "student") if cfg.ema_decay > 0
               else None)
        ReducedMPLModel.__init__(
            self, cfg, reduced_teacher, student, None, None, ema_network=ema,
            name=name or "reduced_meta_pseudo_labels")
        self._init_keras(cfg, reduced_teacher_hidden=reduced_teacher_hidden)

    @property
    def reduced_teacher(self):
        return self.teacher

    def _networks_config(self):
        return {"reduced_teacher":
                keras.saving.serialize_keras_object(self.teacher),
                "student": keras.saving.serialize_keras_object(self.student)}


class _OneNetwork(_KerasTrainer):
    """The Keras face of a step that trains one network (UDA, supervised)."""

    _DEFAULT_NAME = None
    _OPTIMIZER_ATTRIBUTE = None  # where the step class keeps its optimizer

    def __init__(self, model, *, ema_model=None, name=None, **step_args):
        cfg = _step_config(type(self), step_args)
        _check_network(model, "model")
        ema = _twin(model, ema_model, "model") if cfg.ema_decay > 0 else None
        super().__init__(cfg, model, None, ema_network=ema,
                         name=name or self._DEFAULT_NAME)
        self._init_keras(cfg)

    def compile(self, optimizer=None, *, steps_per_execution=1,
                jit_compile="auto", run_eagerly=False):
        """`optimizer`: any Keras optimizer, a name, or None for SGD with
        Nesterov momentum 0.9 at the flags' default --lr (0.016)."""
        self._compile([("optimizer", self._OPTIMIZER_ATTRIBUTE,
                        _prepare_optimizer(optimizer, LR, "optimizer"))],
                      steps_per_execution, jit_compile, run_eagerly)


@keras.saving.register_keras_serializable(package="mpl_tf")
class UDA(_OneNetwork, UDAModel):
    """Unsupervised Data Augmentation: your network trained on labeled CE
    plus the consistency between its weak- and strong-view predictions
    (MetaPseudoLabels' teacher half). `loss` in the logs = teacher_on_l +
    uda/weight * teacher_on_u."""

    _STEP_ARGS = _UDA_ARGS
    _DEFAULT_NAME = "uda"
    _OPTIMIZER_ATTRIBUTE = "teacher_optimizer"

    @staticmethod
    def fit_loss(logs):
        return (logs["cross_entropy/teacher_on_l"]
                + logs["uda/weight"] * logs["cross_entropy/teacher_on_u"])

    def _networks_config(self):
        return {"model": keras.saving.serialize_keras_object(self.teacher)}


@keras.saving.register_keras_serializable(package="mpl_tf")
class Supervised(_OneNetwork, SupervisedModel):
    """Your network on the labeled images alone (the baseline; also the
    finetune stage after MPL). `loss` = cross_entropy/model_on_l."""

    _STEP_ARGS = _SUPERVISED_ARGS
    _DEFAULT_NAME = "supervised"
    _OPTIMIZER_ATTRIBUTE = "optimizer_"

    @staticmethod
    def fit_loss(logs):
        return logs["cross_entropy/model_on_l"]

    def _networks_config(self):
        return {"model": keras.saving.serialize_keras_object(self.network)}


_REQUIRED = inspect.Parameter.empty
_with_step_signature(MetaPseudoLabels,
                     [("teacher", _REQUIRED), ("student", _REQUIRED)],
                     [("ema_student", None)])
_with_step_signature(ReducedMetaPseudoLabels,
                     [("student", _REQUIRED), ("num_classes", None)],
                     [("reduced_teacher", None),
                      ("reduced_teacher_hidden", _RUN.reduced_teacher_hidden),
                      ("ema_student", None)])
_with_step_signature(UDA, [("model", _REQUIRED)], [("ema_model", None)])
_with_step_signature(Supervised, [("model", _REQUIRED)], [("ema_model", None)])
