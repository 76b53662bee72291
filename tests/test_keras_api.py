"""mpl_tf.MetaPseudoLabels / UDA / Supervised as Keras models: fit with
user-built networks, steps_per_execution, resumption, 2 mirrored replicas,
Keras callbacks, saving, the README's example."""

import inspect
import json
import os
import pathlib
import re
import statistics
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import mpl_tf
from mpl_tf import keras_api
from mpl_tf import flags as mpl_flags
from mpl_tf.data import pipeline
from mpl_tf.data.augment import ops as augment_ops
from mpl_tf.data.sources import digits
from mpl_tf.data.pipeline import TrainInput

REPO = pathlib.Path(__file__).resolve().parent.parent
CHECK = REPO / "tests" / "support" / "scripts" / "keras_fit.py"
SIZE = 8
# The step's own scalars, as the CLI logs them (README, "What is logged").
CLI_NAMES = ("cross_entropy/student_on_u", "cross_entropy/student_on_l",
             "cross_entropy/teacher_on_u", "cross_entropy/teacher_on_l",
             "lr/student", "lr/teacher", "mpl/dot_product",
             "mpl/moving_dot_product", "uda/u_ratio", "uda/weight",
             "mpl/feedback", "mpl/baseline", "mpl/labeled_loss_before",
             "mpl/labeled_loss_after", "mpl/teacher_student_agreement",
             "mpl/pseudo_label_accuracy", "uda/teacher_accuracy_on_u",
             "grad_norm/teacher", "grad_norm/student",
             "nonfinite/skipped_steps", "nonfinite/cause")


def _env():
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO), *filter(None, [env.get("PYTHONPATH")])])
    return env


@pytest.fixture(scope="module")
def source():
    return digits.load(50, seed=0, image_size=SIZE)


def dense(width, dropout=0.0):
    """A plain user network: images 0..255 -> logits."""
    layers = [keras.Input((SIZE, SIZE, 3)), keras.layers.Rescaling(1 / 255),
              keras.layers.Flatten(),
              keras.layers.Dense(width, activation="relu")]
    if dropout:
        layers.append(keras.layers.Dropout(dropout))
    return keras.Sequential(layers + [keras.layers.Dense(10)])


def tiny_mpl(dropout=0.2, **step_args):
    keras.utils.set_random_seed(0)
    mpl = mpl_tf.MetaPseudoLabels(
        teacher=dense(16), student=dense(12, dropout), ema_decay=0.9,
        label_smoothing=0.1, uda_steps=4, **step_args)
    mpl.compile(
        mpl_tf.reference_optimizer(mpl_tf.WarmupDecay(0.05, 50,
                                                      warmup_steps=2)),
        keras.optimizers.SGD(0.05, momentum=0.9))
    return mpl


def weights(mpl):
    nets = [mpl.teacher, mpl.student, mpl.ema_student]
    out = [w.numpy() for net in nets for w in net.weights]
    out += [v.numpy() for opt in (mpl.teacher_optimizer,
                                  mpl.student_optimizer)
            for v in opt.variables]
    return out + [mpl.baseline.numpy()]


def assert_same(a, b, atol=0.0):
    assert len(a) == len(b)
    worst = max(float(np.max(np.abs(x - y))) for x, y in zip(a, b))
    assert worst <= atol, worst


def test_defaults_are_the_flags_defaults():
    flag = {n: mpl_flags.FLAGS[n].default for n in mpl_flags.names()}
    for cls in (mpl_tf.MetaPseudoLabels, mpl_tf.ReducedMetaPseudoLabels,
                mpl_tf.UDA, mpl_tf.Supervised):
        params = inspect.signature(cls).parameters
        for name in cls._STEP_ARGS:
            assert params[name].default == flag[name], (cls, name)
    scaled = flag["train_batch_size"] / 256
    assert keras_api.MPL_TEACHER_LR == flag["mpl_teacher_lr"] * scaled
    assert keras_api.MPL_STUDENT_LR == flag["mpl_student_lr"] * scaled
    assert keras_api.LR == flag["lr"] * scaled
    assert pipeline.DEFAULT_BATCH_SIZE == flag["train_batch_size"]
    assert pipeline.DEFAULT_UDA_DATA == flag["uda_data"]
    assert augment_ops.DEFAULT_MAGNITUDE == flag["augment_magnitude"]
    assert (mpl_tf.callbacks.DEFAULT_MAX_NONFINITE_STEPS
            == flag["max_nonfinite_steps"])


def test_import_mpl_tf_does_not_start_tensorflow_nor_touch_the_environment():
    code = ("import os, sys; before = dict(os.environ); import mpl_tf; "
            "assert 'tensorflow' not in sys.modules; "
            "mpl_tf.MetaPseudoLabels, mpl_tf.data.train_dataset; "
            "assert dict(os.environ) == before, set(os.environ) ^ set(before)")
    env = _env()
    env.pop("TF_ENABLE_ONEDNN_OPTS", None)
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    subprocess.run([sys.executable, "-c", code], check=True, env=env,
                   timeout=300)
    assert mpl_tf.MetaPseudoLabels is keras_api.MetaPseudoLabels
    assert mpl_tf.data.train_dataset is pipeline.train_dataset
    assert mpl_tf.data.digits is digits


def test_train_dataset_gives_the_cli_batches(source):
    """Arrays in, TrainInput's batches out: the same draws and views."""
    augment = {"hflip": False, "fill": 0.0, "cutout": 2, "magnitude": 7}
    ours = pipeline.train_dataset(
        source.labeled.images, source.labeled.labels,
        source.unlabeled.images, batch_size=6, uda_data=2, augment=augment,
        seed=3, unlabeled_labels=source.unlabeled.labels)
    cli = TrainInput(source, pipeline.augment_config(source, augment),
                     "mpl", 6, 2, 3).dataset()
    for a, b in zip(ours.take(2), cli.take(2)):
        assert sorted(a) == sorted(b) == ["l_images", "l_labels", "u_labels",
                                          "u_strong", "u_weak"]
        for key in a:
            np.testing.assert_array_equal(a[key].numpy(), b[key].numpy())
    supervised = pipeline.train_dataset(source.labeled.images,
                                         source.labeled.labels, batch_size=4)
    assert sorted(next(iter(supervised))) == ["l_images", "l_labels"]
    with pytest.raises(ValueError, match="unknown keys"):
        pipeline.train_dataset(source.labeled.images, source.labeled.labels,
                                augment={"flip": False})


def test_fit_on_digits_learns(source):
    """400 steps, the default optimizers, plain Keras networks: the EMA
    student is far above chance (10 %). Measured 0.73 / 0.74 / 0.72 over
    seeds 0 / 1 / 2."""
    keras.utils.set_random_seed(0)
    mpl = mpl_tf.MetaPseudoLabels(
        teacher=dense(64), student=dense(64), ema_decay=0.99,
        label_smoothing=0.1, weight_decay=5e-4, uda_steps=100)
    mpl.compile()
    train = pipeline.source_train_dataset(source, batch_size=16, uda_data=4)
    history = mpl.fit(train, epochs=2, steps_per_epoch=200,
                      validation_data=pipeline.eval_dataset(source.test),
                      verbose=0)
    assert set(history.history) == {
        *CLI_NAMES, "mpl/feedback_window_mean", "mpl/feedback_window_std",
        "nonfinite/window_skipped_steps", "nonfinite/window_cause", "loss",
        "val_loss", "val_accuracy", "val_top5_accuracy"}
    result = mpl.evaluate(source.test.images, source.test.labels,
                          return_dict=True, verbose=0)
    assert result["accuracy"] >= 0.5, result
    assert result["accuracy"] == pytest.approx(
        history.history["val_accuracy"][-1])
    # evaluate is the EMA student's: its accuracy, computed here by hand.
    predicted = np.argmax(mpl.ema_student.predict(
        source.test.images.astype(np.float32), verbose=0), -1)
    assert result["accuracy"] == pytest.approx(
        np.mean(predicted == source.test.labels))
    assert int(mpl.global_step.numpy()) == 400


def test_steps_per_execution_and_a_second_fit(source):
    """6 steps as one fit: the same weights with steps_per_execution=3 as
    with 1, and as two fits of 3 steps (the second fit's dataset starts at
    the model's step, not at step 0 again). With jit_compile=True each
    step is one XLA program (as on a TPU): the same weights to float
    rounding. (No dropout: XLA draws other random numbers.)"""
    def run(steps_per_execution=1, fits=1, jit_compile=False):
        mpl = tiny_mpl(dropout=0.0)
        mpl.compile(mpl_tf.reference_optimizer(0.05),
                    keras.optimizers.SGD(0.05, momentum=0.9),
                    steps_per_execution=steps_per_execution,
                    jit_compile=jit_compile)
        assert mpl.jit_compile == jit_compile
        train = pipeline.source_train_dataset(source, batch_size=8,
                                               uda_data=2)
        for _ in range(fits):
            mpl.fit(train, epochs=2 // fits, steps_per_epoch=3, verbose=0)
        assert int(mpl.global_step.numpy()) == 6
        return weights(mpl)

    one = run()
    assert_same(run(steps_per_execution=3), one)
    assert_same(run(fits=2), one)
    assert_same(run(steps_per_execution=3, jit_compile=True), one, atol=1e-5)


def test_two_mirrored_replicas_match_one_device():
    bound = 0.05
    proc = subprocess.run(
        [sys.executable, str(CHECK), "replicas", "--steps=3",
         f"--grad_bound={bound}"], capture_output=True, text=True,
        timeout=600, env=_env(), check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert min(out["logs_one"]["grad_norm/teacher"]) > bound
    assert min(out["logs_one"]["grad_norm/student"]) > bound
    for name, diff in out["max_abs_diff"].items():
        assert diff <= 1e-5, (name, diff)
    # Logs: the same global values on 2 replicas as on one device (none
    # summed over replicas), step by step.
    for name, one in out["logs_one"].items():
        np.testing.assert_allclose(out["logs_two"][name], one, rtol=1e-3,
                                   atol=1e-5, err_msg=name)
    for name, one in out["eval_one"].items():
        assert out["eval_two"][name] == pytest.approx(one, abs=1e-5), name
    # fit splits each global batch into exactly TrainInput's replica shares.
    assert out["replica_share_diff"] == 0.0


def test_backup_and_restore_resumes_after_sigkill(tmp_path):
    """Killed after the first epoch's backup, rerun: it resumes at epoch 1
    and ends with the weights of an uninterrupted run (dropout's random
    state, the baseline and the batch sequence restored too)."""
    def cmd(*extra):
        return [sys.executable, str(CHECK), "backup", "--epochs=3",
                "--steps_per_epoch=2", f"--backup_dir={tmp_path / 'backup'}",
                *extra]

    proc = subprocess.Popen(cmd("--hang_after_epoch=0"),
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True, env=_env())
    try:
        for line in proc.stdout:
            if line.startswith("HANGING"):
                break
    finally:
        proc.kill()
        proc.wait()
    assert json.loads((tmp_path / "backup" / "training_metadata.json")
                      .read_text())["epoch"] == 1
    # The rerun, then (same process) an uninterrupted run without backups.
    rerun = subprocess.run(cmd("--also_straight"), capture_output=True,
                           text=True, timeout=600, env=_env(), check=False)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    out = json.loads(rerun.stdout.strip().splitlines()[-1])
    assert out["resumed"] == {"epochs": [1, 2], "step": 6}
    assert out["straight"] == {"epochs": [0, 1, 2], "step": 6}
    assert out["max_abs_diff"] == 0.0, out


def test_checkpoints_callback_writes_the_cli_checkpoints_and_resumes(
        source, tmp_path):
    """mpl_tf.callbacks.Checkpoints: ckpt-<step> as the command line names
    them; a new model fitted with the same callback restores the newest and
    ends with the weights of an uninterrupted run."""
    def fit(mpl, steps, callbacks=()):
        train = pipeline.source_train_dataset(source, batch_size=8,
                                              uda_data=2)
        mpl.fit(train, epochs=1, steps_per_epoch=steps, verbose=0,
                callbacks=list(callbacks))
        return mpl

    straight = fit(tiny_mpl(), 6)
    saver = mpl_tf.callbacks.Checkpoints(str(tmp_path), every=2)
    fit(tiny_mpl(), 3, [saver])
    assert [os.path.basename(p) for p in saver.manager.checkpoints] == [
        "ckpt-2", "ckpt-3"]
    resumed = mpl_tf.callbacks.Checkpoints(str(tmp_path), every=2)
    again = fit(tiny_mpl(), 3, [resumed])
    assert resumed.restored.endswith("ckpt-3")
    assert int(again.global_step.numpy()) == 6
    assert_same(weights(again), weights(straight))


def test_keras_callbacks_and_saving(source, tmp_path):
    mpl = tiny_mpl()
    train = pipeline.source_train_dataset(source, batch_size=8, uda_data=2)
    test = pipeline.eval_dataset(source.test, batch_size=200)
    callbacks = [
        keras.callbacks.TensorBoard(str(tmp_path / "tb"), update_freq=2),
        keras.callbacks.ModelCheckpoint(str(tmp_path / "mpl.keras")),
        keras.callbacks.ModelCheckpoint(
            str(tmp_path / "e{epoch}.weights.h5"), save_weights_only=True),
        # Stops once val_accuracy has not gained 1.0 (never) for 2 epochs.
        keras.callbacks.EarlyStopping("val_accuracy", min_delta=1.0,
                                      patience=2, mode="max"),
        keras.callbacks.TerminateOnNaN()]
    history = mpl.fit(train, epochs=10, steps_per_epoch=2,
                      validation_data=test, callbacks=callbacks, verbose=0)
    assert len(history.history["loss"]) == 3  # EarlyStopping
    assert sorted(p.name for p in tmp_path.glob("e*.weights.h5")) == [
        "e1.weights.h5", "e2.weights.h5", "e3.weights.h5"]

    # TensorBoard: the CLI's names, per epoch and every 2 steps.
    tags = set()
    for event_file in (tmp_path / "tb" / "train").glob("events.*"):
        for record in tf.compat.v1.train.summary_iterator(str(event_file)):
            tags.update(v.tag for v in record.summary.value)
    for name in ("mpl/feedback", "cross_entropy/student_on_l", "loss"):
        assert f"epoch_{name}" in tags and f"batch_{name}" in tags, name

    expected = mpl.evaluate(test, return_dict=True, verbose=0)
    # The whole model (.keras): networks, optimizers, step state; compiled.
    loaded = keras.models.load_model(tmp_path / "mpl.keras")
    assert isinstance(loaded, mpl_tf.MetaPseudoLabels)
    as_json = lambda model: json.dumps(model.get_config(), sort_keys=True)
    assert as_json(loaded) == as_json(mpl)
    assert_same(weights(loaded), weights(mpl))
    for name in ("nonfinite_steps", "student_seed_state_0"):
        assert np.array_equal(loaded._extra_state()[name].numpy(),
                              mpl._extra_state()[name].numpy())
    got = loaded.evaluate(test, return_dict=True, verbose=0)
    assert got == pytest.approx(expected, abs=1e-6)
    # Weights only, into a model built the same way.
    again = tiny_mpl()
    again.load_weights(tmp_path / "e3.weights.h5")
    assert_same(weights(again), weights(mpl))
    # The student alone, as the user built it.
    mpl.student.save(tmp_path / "student.keras")
    student = keras.models.load_model(tmp_path / "student.keras")
    images = source.test.images[:16].astype(np.float32)
    np.testing.assert_allclose(student.predict(images, verbose=0),
                               mpl.student.predict(images, verbose=0),
                               atol=1e-6)


def test_terminate_on_nan_stops_and_nothing_changes(source):
    """NaN images make the gradients NaN: the step is undone (the CLI's
    guard), its `loss` is NaN and TerminateOnNaN stops fit there."""
    mpl = tiny_mpl()
    before = weights(mpl)
    train = pipeline.source_train_dataset(source, batch_size=8, uda_data=2)
    poisoned = train.map(lambda b: {**b, "l_images": b["l_images"] * np.nan})
    history = mpl.fit(poisoned, epochs=3, steps_per_epoch=4, verbose=0,
                      callbacks=[keras.callbacks.TerminateOnNaN()])
    assert np.isnan(history.history["loss"][-1])
    assert int(mpl.global_step.numpy()) == 1
    assert int(mpl.nonfinite_steps.numpy()) == 1
    after = weights(mpl)
    # Only the optimizers' step counters moved (a skipped step still counts).
    changed = [i for i, (a, b) in enumerate(zip(before, after))
               if not np.array_equal(a, b)]
    counters = {i for i, v in enumerate(
        [w for net in (mpl.teacher, mpl.student, mpl.ema_student)
         for w in net.weights]
        + [v for opt in (mpl.teacher_optimizer, mpl.student_optimizer)
           for v in opt.variables]) if "iteration" in v.path}
    assert changed and set(changed) <= counters, changed


class _BatchLogs(keras.callbacks.Callback):
    """Each batch's logs (copied) and the trainable weights after it."""

    def __init__(self):
        super().__init__()
        self.logs, self.weights = [], []

    def on_train_batch_end(self, batch, logs=None):
        self.logs.append({k: float(v) for k, v in logs.items()})
        self.weights.append([w.numpy() for w in self.model.trainable_weights])


def test_feedback_window_statistics_over_each_epoch(source):
    """mpl/feedback_window_mean and _std: the mean and (population) spread
    of the epoch's per-step feedback, as the CLI's over a log window."""
    mpl = tiny_mpl()
    seen = _BatchLogs()
    train = pipeline.source_train_dataset(source, batch_size=8, uda_data=2)
    history = mpl.fit(train, epochs=2, steps_per_epoch=3, verbose=0,
                      callbacks=[seen])
    for epoch in range(2):
        steps = [logs["mpl/feedback"]
                 for logs in seen.logs[3 * epoch:3 * epoch + 3]]
        assert len(set(steps)) == 3  # three different values
        assert history.history["mpl/feedback_window_mean"][epoch] == \
            pytest.approx(statistics.fmean(steps), rel=1e-5, abs=1e-9)
        assert history.history["mpl/feedback_window_std"][epoch] == \
            pytest.approx(statistics.pstdev(steps), rel=1e-3, abs=1e-9)


def test_stop_after_non_finite_steps(source):
    """The fit face of --max_nonfinite_steps: 2 tolerated, stopped at the
    third skipped step in a row, holding the last good step's weights."""
    mpl = tiny_mpl()
    train = pipeline.source_train_dataset(source, batch_size=8, uda_data=2)
    poisoned = train.enumerate().map(lambda i, b: {
        **b, "l_images": b["l_images"] * tf.where(i >= 2, np.nan, 1.0)})
    seen = _BatchLogs()
    stop = mpl_tf.callbacks.StopAfterNonFiniteSteps(max_steps=2)
    mpl.fit(poisoned, epochs=3, steps_per_epoch=4, verbose=0,
            callbacks=[seen, stop])
    assert stop.stopped_at == int(mpl.global_step.numpy()) == 5
    assert len(seen.logs) == 5
    assert [np.isnan(logs["loss"]) for logs in seen.logs] == \
        [False, False, True, True, True]
    assert_same(seen.weights[1], [w.numpy() for w in mpl.trainable_weights])


def test_reduced_mpl_fit_from_stored_distributions(source, tmp_path):
    """Reduced MPL from a Python user's arrays: each batch carries its own
    images' stored distributions, the student learns from the reduced
    teacher's labels, the reduced teacher leaves the identity, and the
    model saves and loads whole."""
    def oracle(labels):  # a "large teacher" that knows the classes
        probs = np.full([len(labels), 10], 0.02, np.float32)
        probs[np.arange(len(labels)), labels] = 0.82
        return probs

    unlabeled = source.unlabeled
    train = pipeline.train_dataset(
        source.labeled.images, source.labeled.labels, unlabeled.images,
        batch_size=16, uda_data=2, unlabeled_labels=unlabeled.labels,
        teacher_probs=(oracle(source.labeled.labels),
                       oracle(unlabeled.labels)))
    for batch in train.take(3):
        for part in ("l", "u"):
            np.testing.assert_array_equal(
                np.argmax(batch[f"{part}_teacher"], axis=1),
                batch[f"{part}_labels"])
    keras.utils.set_random_seed(0)
    rmpl = mpl_tf.ReducedMetaPseudoLabels(dense(32), num_classes=10,
                                          ema_decay=0.9, label_smoothing=0.1)
    rmpl.compile()
    history = rmpl.fit(train, epochs=1, steps_per_epoch=150, verbose=0)
    assert history.history["uda/weight"] == [0.0]
    outer = rmpl.reduced_teacher.get_layer("outer").kernel.numpy()
    assert np.abs(outer).max() > 0  # it started at zero: the identity
    result = rmpl.evaluate(source.test.images, source.test.labels,
                           return_dict=True, verbose=0)
    assert result["accuracy"] > 0.3, result  # chance: 0.1
    rmpl.save(tmp_path / "rmpl.keras")
    loaded = keras.models.load_model(tmp_path / "rmpl.keras")
    assert isinstance(loaded, mpl_tf.ReducedMetaPseudoLabels)
    assert loaded.evaluate(source.test.images, source.test.labels,
                           return_dict=True, verbose=0) == \
        pytest.approx(result, abs=1e-6)
    with pytest.raises(ValueError, match="teacher_probs"):
        pipeline.train_dataset(source.labeled.images, source.labeled.labels,
                                unlabeled.images,
                                teacher_probs=(oracle(source.labeled.labels),
                                               oracle(source.labeled.labels)))


@pytest.mark.parametrize("cls", ["UDA", "Supervised"])
def test_uda_and_supervised_fit(source, cls):
    keras.utils.set_random_seed(0)
    if cls == "UDA":
        model = mpl_tf.UDA(dense(16), ema_decay=0.9, uda_steps=4)
    else:
        model = mpl_tf.Supervised(dense(16), ema_decay=0.9)
    model.compile(steps_per_execution=2)
    mode = cls.lower()
    train = pipeline.source_train_dataset(source, batch_size=8, uda_data=2,
                                           mode=mode)
    history = model.fit(train, epochs=1, steps_per_epoch=4, verbose=0)
    names = ({"cross_entropy/teacher_on_l", "cross_entropy/teacher_on_u",
              "uda/u_ratio", "uda/weight", "lr/teacher", "grad_norm/teacher",
              "uda/teacher_accuracy_on_u"} if cls == "UDA" else
             {"cross_entropy/model_on_l", "lr/model", "grad_norm/model"})
    assert set(history.history) == names | {
        "loss", "nonfinite/skipped_steps", "nonfinite/cause",
        "nonfinite/window_skipped_steps", "nonfinite/window_cause"}
    assert int(model.global_step.numpy()) == 4
    result = model.evaluate(source.test.images, source.test.labels,
                            return_dict=True, verbose=0)
    assert set(result) == {"loss", "accuracy", "top5_accuracy"}
    assert model.get_config()["ema_decay"] == 0.9


class _Subclassed(keras.Model):
    """A subclassed network (no get_config), built on creation."""

    def __init__(self):
        super().__init__()
        self.hidden = keras.layers.Dense(4, activation="relu")
        self.logits = keras.layers.Dense(10)
        self(np.zeros((1, SIZE, SIZE, 3), np.float32))

    def call(self, images, training=False):
        flat = tf.reshape(images, [tf.shape(images)[0], -1]) / 255.0
        return self.logits(self.hidden(flat))


def test_constructor_checks():
    with pytest.raises(ValueError, match="no weights yet"):
        mpl_tf.MetaPseudoLabels(teacher=dense(4),
                                student=keras.Sequential(
                                    [keras.layers.Dense(10)]))
    with pytest.raises(ValueError, match="mpl_label='soft' needs"):
        mpl_tf.MetaPseudoLabels(teacher=dense(4), student=dense(4),
                                mpl_label="soft")
    with pytest.raises(ValueError, match="mpl_feedback="):
        mpl_tf.MetaPseudoLabels(teacher=dense(4), student=dense(4),
                                mpl_feedback="exakt")
    # A subclassed student without get_config cannot be cloned for its
    # moving average: the error says how to give the twin instead.
    with pytest.raises(ValueError, match="pass a second, identically built"):
        mpl_tf.MetaPseudoLabels(teacher=dense(4), student=_Subclassed(),
                                ema_decay=0.9)
    mpl = mpl_tf.MetaPseudoLabels(teacher=dense(4), student=_Subclassed(),
                                  ema_decay=0.9, ema_student=_Subclassed())
    assert_same([w.numpy() for w in mpl.ema_student.weights],
                [w.numpy() for w in mpl.student.weights])
    with pytest.raises(ValueError, match="two optimizer objects"):
        opt = keras.optimizers.SGD()
        mpl.compile(opt, opt)


def _readme_example():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("## Use it from Python", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_example_runs(tmp_path):
    code = _readme_example()
    # Two short epochs instead of the example's eight of 100 steps.
    small = code.replace("EPOCHS, STEPS_PER_EPOCH = 8, 100",
                         "EPOCHS, STEPS_PER_EPOCH = 2, 5")
    assert small != code
    proc = subprocess.run([sys.executable, "-c", small], cwd=tmp_path,
                          capture_output=True, text=True, timeout=600,
                          env=_env(), check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "test accuracy" in proc.stdout
    assert (tmp_path / "student.keras").exists()
