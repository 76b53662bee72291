"""What a run prints: a progress display, the eval lines, the results and
real warnings; TensorFlow's own logging only when asked for.

TensorFlow's C++ logger writes CUDA probes (`failed call to cuInit` on a
machine without a GPU driver), oneDNN and CPU-feature notices and saver
timings, all at import or during routine work; the command line sets
TF_CPP_MIN_LOG_LEVEL=3 (fatal only) before TensorFlow loads unless the user
set it (`tensorflow_defaults`), and imports TensorFlow through
`import_tensorflow`,
which applies the level to the lines its libraries print while loading
(they ignore the variable). The command line's absl `--verbosity`, when
given, sets both the Python log level (absl's meaning) and the C++ one
(-1 = warnings and up, 0 or more = everything), unless the user set
TF_CPP_MIN_LOG_LEVEL: the user's environment wins. Without `--verbosity`,
Python logging shows warnings and errors only (absl's `app.run` would show
INFO).

Progress: on a terminal, Keras' progress bar; otherwise (a log file, a
pipe, CI) one plain line per logging window, with no carriage returns or
colour codes. (Keras' own non-terminal detection does not work on Linux:
it counts `posix` in sys.modules as a dynamic display.)
"""

import contextlib
import importlib
import logging
import os
import re
import sys
import tempfile
import time

CPP_LEVEL = "TF_CPP_MIN_LOG_LEVEL"
SEVERITIES = "IWEF"  # C++ log severities, in TF_CPP_MIN_LOG_LEVEL's order
# A C++ log record's first line: absl's `I0000 00:00:1795...  1552 port.cc:153]`
# or TensorFlow's older `2026-11-27 19:46:03.461266: I tensorflow/...cc:44]`.
CPP_LOG_LINE = re.compile(r"^(?:([IWEF])\d{4} \d\d:\d\d:\d+\.\d+ +\d+ "
                          r"|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: ([IWEF]) )")
ABSL_BANNER = ("WARNING: All log messages before absl::InitializeLog() is "
               "called are written to STDERR")


# TF_CPP_MIN_LOG_LEVEL as the user set it before `tensorflow_defaults`.
USER_CPP_LEVEL = None


def tensorflow_defaults():
    """Set the command line's TensorFlow defaults; call before TensorFlow
    is imported (both are read then). A value already in the environment
    wins.

    - TF_ENABLE_ONEDNN_OPTS=1: TensorFlow turns its oneDNN CPU kernels on
      by default only on some Intel CPUs; on AMD EPYC the Eigen kernels make
      the WRN-28-2 MPL step ~1.6x slower (docs/results.md).
    - TF_CPP_MIN_LOG_LEVEL=3: TensorFlow's C++ logger prints CUDA probes
      ("failed call to cuInit" where there is no GPU driver), oneDNN and
      CPU-feature notices and saver timings: noise on a training console.
      The user's own value is kept for `--verbosity` (configure_logging).
    """
    global USER_CPP_LEVEL
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
    USER_CPP_LEVEL = os.environ.get(CPP_LEVEL)
    os.environ.setdefault(CPP_LEVEL, "3")


def cpp_min_log_level(verbosity):
    """TensorFlow's C++ minimum level for an absl --verbosity: -1 (warning)
    -> 1, -2 (error) -> 2, -3 (fatal) -> 3, 0 (info) or more -> 0."""
    return min(3, max(0, -int(verbosity)))


def configure_logging(flag_values):
    """Apply the console defaults after the flags are parsed, then import
    TensorFlow. `flag_values`: absl's FLAGS."""
    from absl import logging as absl_logging

    handler = absl_logging.get_absl_handler()
    current = getattr(handler, "python_handler", handler).formatter
    if not isinstance(current, PlainWarnings):
        handler.setFormatter(PlainWarnings(current or logging.Formatter()))
    if flag_values["verbosity"].present > 0:
        if USER_CPP_LEVEL is None:
            if "tensorflow" in sys.modules:
                absl_logging.warning("--verbosity cannot change TensorFlow's C++ "
                                "log level: TensorFlow is already imported")
            os.environ[CPP_LEVEL] = str(
                cpp_min_log_level(flag_values.verbosity))
    else:
        absl_logging.set_verbosity(absl_logging.WARNING)
    import_tensorflow()


def min_log_level():
    """TF_CPP_MIN_LOG_LEVEL as TensorFlow reads it (0 when unset or bad)."""
    try:
        return min(3, max(0, int(os.environ.get(CPP_LEVEL, "0"))))
    except ValueError:
        return 0


def below_level(line, level):
    """True for a C++ log line (or absl's pre-initialisation banner) that
    TF_CPP_MIN_LOG_LEVEL=`level` is meant to hide."""
    if level > 0 and line.startswith(ABSL_BANNER):
        return True
    match = CPP_LOG_LINE.match(line)
    if not match:
        return False
    return SEVERITIES.index(match.group(1) or match.group(2)) < level


@contextlib.contextmanager
def native_stderr_filtered(drop):
    """Hold what C and C++ libraries write to standard error (file
    descriptor 2) inside the block, then write it out without the lines
    for which `drop(line)` is true."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            text = held.read().decode("utf-8", errors="replace")
            kept = [line for line in text.splitlines(keepends=True)
                    if not drop(line)]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


def import_tensorflow():
    """`import tensorflow`, honouring TF_CPP_MIN_LOG_LEVEL for what its
    libraries log while they load, before TensorFlow's logging reads the
    variable (TF 2.19+ prints `cudart_stub.cc`, oneDNN notices and absl's
    banner regardless; tensorflow/tensorflow issue 100442). Level 0 (or
    TensorFlow already loaded): a plain import."""
    level = min_log_level()
    if level == 0 or "tensorflow" in sys.modules:
        importlib.import_module("tensorflow")
        return
    with native_stderr_filtered(lambda line: below_level(line, level)):
        importlib.import_module("tensorflow")


# What the image decoders' libraries print about a damaged file (libjpeg:
# "Corrupt JPEG data: ...", "Improper call to JPEG library in state 201",
# "Premature end of JPEG file"; libpng: "libpng error: ..."); mpl_tf names
# the files that cannot be decoded itself.
DECODER_NOISE = re.compile(r"^(?:.*\bJPEG\b|libpng |.*\bGIF\b)")


def decoder_noise(line):
    return bool(DECODER_NOISE.match(line))


class PlainWarnings(logging.Formatter):
    """absl's log format for information, one plain line for warnings and
    errors: `mpl_tf: warning: ...` instead of absl's
    `W1206 00:32:21.569651 140362476219264 folder.py:132] ...`."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def format(self, record):
        if record.levelno >= logging.WARNING:
            return f"mpl_tf: {record.levelname.lower()}: {record.getMessage()}"
        return self.inner.format(record)


def warn(text):
    """A warning a person reads: one plain line on standard error."""
    sys.stdout.flush()
    print(f"mpl_tf: warning: {text}", file=sys.stderr, flush=True)


def _eta(seconds):
    seconds = int(max(seconds, 0))
    if seconds >= 3600:
        return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
    return f"{seconds // 60}:{seconds % 60:02d}"


class Progress:
    """The training progress of one stage, from `start` to `total` steps.

    `update(step, values)` at every logging step, with the values at that
    step; `line(text)` prints a line (an evaluation, say) without breaking
    the display. Disabled (prints nothing) with `enabled=False`, e.g. on
    workers other than the chief.
    """

    def __init__(self, total, start=0, enabled=True, stream=None):
        self.total, self.enabled = total, enabled
        self.stream = stream or sys.stdout
        self.interactive = bool(getattr(self.stream, "isatty", None)
                                and self.stream.isatty())
        self._bar = None
        self._open = False  # the bar's line has no newline yet
        self._t0, self._step0 = time.time(), start
        if enabled and self.interactive:
            import keras
            self._bar = keras.utils.Progbar(total)
            self._bar.update(start)
            self._open = start < total

    def update(self, step, values=()):
        """`values`: (name, value) pairs to show beside the step."""
        if not self.enabled:
            return
        if self._bar is not None:
            values = list(values)
            # The values at this step, as on the lines and in TensorBoard
            # (Keras would show their mean since the start).
            self._bar.stateful_metrics.update(name for name, _ in values)
            self._bar.update(step, values=values)
            self._open = step < self.total
            return
        now = time.time()
        rate = (step - self._step0) / max(now - self._t0, 1e-9)
        parts = [f"step {step}/{self.total}", f"{rate:.2f} steps/s"]
        if step < self.total and rate > 0:
            parts.append(f"ETA {_eta((self.total - step) / rate)}")
        parts += [f"{name} {value:.4f}" for name, value in values]
        self._write(" - ".join(parts))

    def line(self, text):
        if not self.enabled:
            return
        if self._open:  # end the bar's line first; it redraws below
            self.stream.write("\n")
            self._open = False
        self._write(text)

    def _write(self, text):
        self.stream.write(text + "\n")
        self.stream.flush()
