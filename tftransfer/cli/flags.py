"""absl flags generated from the config dataclasses, and argv -> validated RunConfig."""
from __future__ import annotations

from absl import flags

from tftransfer.config import run_config as config_lib
from tftransfer.config.validation import validate
from tftransfer.search import space as search_space

FLAGS = flags.FLAGS


class _NumberOrWord(flags.ArgumentParser):
    """A float flag that also takes the field's `words` (e.g. --learning_rate=find)."""

    def __init__(self, words: tuple[str, ...]):
        self.words = words

    def parse(self, argument):
        if isinstance(argument, str) and argument.strip().lower() in self.words:
            return argument.strip().lower()
        try:
            return float(argument)
        except (TypeError, ValueError):
            raise ValueError(f"expected a number or {' or '.join(self.words)}, "
                             f"got {argument!r}") from None

    def flag_type(self):
        return f"float or {'/'.join(self.words)}"


def _define(f, flag_values: flags.FlagValues) -> None:
    default, help_text = f.default, f.metadata["help"]
    choices = f.metadata.get("choices")
    if f.metadata.get("words"):
        flags.DEFINE(_NumberOrWord(f.metadata["words"]), f.name, default, help_text,
                     flag_values=flag_values)
    elif isinstance(default, tuple):
        flags.DEFINE_list(f.name, [str(v) for v in default], help_text, flag_values=flag_values)
    elif choices and isinstance(default, str):
        flags.DEFINE_enum(f.name, default, choices, help_text, flag_values=flag_values)
    elif isinstance(default, bool):
        flags.DEFINE_bool(f.name, default, help_text, flag_values=flag_values)
    elif isinstance(default, int):
        flags.DEFINE_integer(f.name, default, help_text, flag_values=flag_values)
    elif isinstance(default, float):
        flags.DEFINE_float(f.name, default, help_text, flag_values=flag_values)
    else:
        flags.DEFINE_string(f.name, default, help_text, flag_values=flag_values)


def define_flags(flag_values: flags.FlagValues = FLAGS) -> None:
    """Defines one flag per config field (idempotent)."""
    for _, f in config_lib.leaf_fields():
        if f.name not in flag_values:
            _define(f, flag_values)


def _coerce_list(f, values: list[str]) -> tuple:
    element = {"tuple[int, ...]": int, "tuple[float, ...]": float}.get(f.type, str)
    try:
        return tuple(element(v) for v in values if v != "")
    except ValueError:
        raise config_lib.ConfigError(f.name, f"expected a comma-separated list of "
                                             f"{element.__name__}s, got {values}") from None


def config_from_flags(flag_values: flags.FlagValues = FLAGS) -> config_lib.RunConfig:
    """Reads parsed flags into a validated RunConfig."""
    values = {}
    for _, f in config_lib.leaf_fields():
        value = flag_values[f.name].value
        values[f.name] = _coerce_list(f, value) if isinstance(f.default, tuple) else value
    cfg = validate(config_lib.from_flat(values))
    if cfg.search.search_space:
        search_space.load_overrides(cfg.search.search_space)  # a ConfigError names the flag
    return cfg
