"""The command line's absl flags, generated from `config.RunConfig` (one
flag per option, same name, default and help), and the run configuration
they give (`from_flags`). `help_text` is `--help`: mpl_tf's flags by topic.
"""

import textwrap
import typing

from absl import flags

from mpl_tf import config

FLAGS = flags.FLAGS


class StepsParser(flags.ArgumentParser):
    """A step count: an integer (`500`) or a share of --num_train_steps
    (`10%`), so a schedule keeps its shape when the budget changes."""

    syntactic_help = "an integer, or a percentage of --num_train_steps"

    def parse(self, argument):
        if isinstance(argument, int):
            value = argument
        else:
            text = str(argument).strip()
            try:
                if text.endswith("%"):
                    share = float(text[:-1])
                    if not 0.0 <= share <= 100.0:
                        raise ValueError
                    return text
                value = int(text)
            except ValueError:
                raise ValueError(f"{argument!r} is not a step count: give an "
                                 "integer like 500 or a percentage of "
                                 "--num_train_steps like 10%") from None
        if value < 0:
            raise ValueError(f"{value} is negative: give an integer >= 0 or "
                             "a percentage of --num_train_steps like 10%")
        return value

    def flag_type(self):
        return "steps"


_DEFINE = {bool: flags.DEFINE_boolean, int: flags.DEFINE_integer,
           float: flags.DEFINE_float, str: flags.DEFINE_string}


def _field_type(field):
    hint = typing.get_type_hints(config.RunConfig)[field.name]
    return typing.get_args(hint)[0] if typing.get_args(hint) else hint


def _define(field):
    if field.metadata["steps"]:
        flags.DEFINE(StepsParser(), field.name, field.default,
                     field.metadata["help"],
                     serializer=flags.ArgumentSerializer())
    else:
        _DEFINE[_field_type(field)](field.name, field.default,
                                    field.metadata["help"])


for _field in config.options():
    if _field.name not in FLAGS:
        _define(_field)


def names():
    return [f.name for f in config.options()]


def from_flags():
    """The RunConfig the parsed flags give (not yet validated)."""
    values = {n: FLAGS[n].value for n in names()}
    explicit = frozenset(n for n in values if FLAGS[n].present > 0)
    return config.RunConfig(**values, explicit=explicit)


def _default_text(field):
    if field.default is None:
        return "unset"
    if isinstance(field.default, bool):
        return "true" if field.default else "false"
    return repr(field.default) if isinstance(field.default, str) \
        else f"{field.default:g}" if isinstance(field.default, float) \
        else str(field.default)


def help_text(width=79):
    """mpl_tf's flags grouped by topic, with their defaults."""
    lines = ["python -m mpl_tf.main --flagfile=FILE [--flag=value ...]",
             "", "mpl_tf's flags (--helpfull also lists absl's and "
             "TensorFlow's):"]
    by_topic = {}
    for field in config.options():
        by_topic.setdefault(field.metadata["topic"], []).append(field)
    for topic, title in config.TOPICS.items():
        lines += ["", f"{title}:"]
        for field in by_topic.get(topic, []):
            lines.append(f"  --{field.name} (default: "
                         f"{_default_text(field)})")
            lines += textwrap.wrap(field.metadata["help"], width,
                                   initial_indent="      ",
                                   subsequent_indent="      ")
    return "\n".join(lines)


def markdown_table():
    """docs/flags.md: every flag by topic, default and help."""
    out = ["# Flags", "",
           "Generated from `mpl_tf/config.py` by `python -m mpl_tf.flags`; "
           "`tests/test_flags.py` fails when this file is stale.",
           "Step counts marked *steps* also take a share of "
           "`--num_train_steps`, e.g. `10%`."]
    by_topic = {}
    for field in config.options():
        by_topic.setdefault(field.metadata["topic"], []).append(field)
    for topic, title in config.TOPICS.items():
        out += ["", f"## {title}", "", "| flag | default | what it does |",
                "|---|---|---|"]
        for field in by_topic.get(topic, []):
            kind = " (*steps*)" if field.metadata["steps"] else ""
            text = field.metadata["help"].replace("|", "\\|")
            out.append(f"| `--{field.name}`{kind} | "
                       f"`{_default_text(field)}` | {text} |")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    print(markdown_table(), end="")

