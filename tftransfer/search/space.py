"""The search space, declared in one place as data (pure Python, no TensorFlow).

Each hyperparameter is named after the flag it sets, so the best trial's values become
a config with `config.from_flat`. A JSON file (`--search_space`) overrides entries:
`[a, b]` is a choice, `{"min": x, "max": y, "log": true}` a range, a scalar a fixed value.

Every search's first trial is the space's starting point: each choice's first value and
each range's "start", by default its middle (geometric for a log range).
"""
from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

from tftransfer.config.run_config import (
    ADVERSARIAL_ATTACKS, AUGMENTATIONS, CLASS_WEIGHTS, NATIVE_IMAGE_SIZE, OPTIMIZERS,
    ConfigError)
from tftransfer.search.hyperrule import Prior


@dataclasses.dataclass(frozen=True)
class Choice:
    values: tuple


@dataclasses.dataclass(frozen=True)
class Range:
    min: float
    max: float
    log: bool = False
    start: float | None = None  # the first trial's value; None: the middle


@dataclasses.dataclass(frozen=True)
class Fixed:
    value: Any


SEARCHABLE = ("head_units", "dropout", "l2", "label_smoothing", "optimizer", "learning_rate",
              "fine_tune_depth", "fine_tune_lr_factor", "bn_inference", "augment",
              "batch_size", "image_size", "class_weight")
# SGD's own learning rate, active only in trials that pick SGD; it becomes --learning_rate.
SGD_LEARNING_RATE = "sgd_learning_rate"
# Nesterov SGD (momentum 0.9) moves a head by ~10x its raw gradient times the learning rate,
# which is much smaller than Adam's normalised steps of ~the learning rate: with one shared
# range, most SGD trials barely trained. SGD gets the prior's range times this.
SGD_LR_SCALE = 10.0
# Searched only when --search_space names them: a trial then trains on adversarial batches.
ADVERSARIAL = ("adversarial", "adversarial_epsilon", "adversarial_mix")
# Also only when named: the weights' average (--ema), layer-wise rate decay and the set of
# augmentations are not yet measured on enough kinds of data to earn a place in every
# default search. An `augmentations` value is a comma-separated list of names, e.g.
# ["flip,crop", "flip,crop,mixup", "flip,crop,cutmix", "randaugment,mixup,cutmix"].
OPT_IN = ("ema", "ema_momentum", "layer_lr_decay", "augmentations")
# The entries whose values are comma-separated lists of the flag's tuple.
LISTS = ("head_units", "augmentations")
OVERRIDABLE = SEARCHABLE + (SGD_LEARNING_RATE,) + ADVERSARIAL + OPT_IN
# The smallest searched input: a backbone built for 224 px reduces 32 px to a 1x1 map.
SMALLEST_IMAGE_SIZE = 32


def resolutions(own_size: int, native: int = NATIVE_IMAGE_SIZE) -> tuple[int, ...]:
    """The input sizes a search tries when --image_size leaves them open: the native size
    first (what the run trains without a search), then the data's own size (rounded up to
    a multiple of 32) doubling while below it. Small images upscaled to 224 px cost up to
    50x the compute of their own size and may gain nothing from it, or a lot."""
    sizes, size = [native], max(SMALLEST_IMAGE_SIZE, 32 * math.ceil(own_size / 32))
    while size < native:
        sizes.append(size)
        size *= 2
    return tuple(sizes)


def default_space(prior: Prior, augment: bool, batch_size: int,
                  image_sizes: tuple[int, ...] = (), imbalanced: bool = False) -> dict[str, Any]:
    """`image_sizes`: the resolutions to search (resolutions()); none or one: not searched.
    `imbalanced`: the training split's classes differ enough in size that balanced loss
    weights are tried too (class_weights.IMBALANCED); otherwise --class_weight holds."""
    resolution = {"image_size": Choice(tuple(image_sizes))} if len(image_sizes) > 1 else {}
    weights = {"class_weight": Choice(CLASS_WEIGHTS)} if imbalanced else {}
    return {**resolution, **weights,
        # The starting point is the least regularised, largest head at the middle learning
        # rate: in a few epochs regularisation costs accuracy before it pays (in the search
        # benchmark the best frozen trials had a 512-256 head and dropout under 0.05).
        "head_units": Choice(("512,256", "256", "")),
        "dropout": Range(*prior.dropout, start=prior.dropout[0]),
        "l2": Choice((0.0, 1e-5, 1e-4)),
        "label_smoothing": Choice((0.0, 0.1)),
        "optimizer": Choice(("adam", "sgd")),
        "learning_rate": Range(*prior.learning_rate, log=True),
        SGD_LEARNING_RATE: Range(*(lr * SGD_LR_SCALE for lr in prior.learning_rate), log=True),
        "fine_tune_depth": Choice(prior.fine_tune_depths),
        "fine_tune_lr_factor": Range(0.03, 0.5, log=True),
        # Fine-tuned BatchNorm statistics adapt to a domain far from ImageNet (grey,
        # upscaled clothes: +1 point) but are noisy on small batches.
        "bn_inference": Choice((True, False)),
        # Frozen trials without augmentation train on cached features: keep both kinds.
        "augment": Choice((False, True)) if augment else Fixed(False),
        "batch_size": Fixed(batch_size),
    }


def _parse_entry(name: str, raw: Any):
    if isinstance(raw, list):
        if not raw:
            raise ConfigError("search_space", f"'{name}' has an empty choice list")
        return Choice(tuple(raw))
    if isinstance(raw, dict):
        unknown = set(raw) - {"min", "max", "log", "start"}
        numbers = [raw.get(key, 0.0) for key in ("min", "max", "start")]
        if (unknown or not {"min", "max"} <= set(raw)
                or not all(isinstance(n, (int, float)) and not isinstance(n, bool)
                           for n in numbers)
                or not raw["min"] <= raw.get("start", raw["min"]) <= raw["max"]):
            raise ConfigError("search_space", f"'{name}' range needs min <= max (optional "
                                              f"log, and start between them), got {raw}")
        start = raw.get("start")
        return Range(float(raw["min"]), float(raw["max"]), bool(raw.get("log", False)),
                     None if start is None else float(start))
    return Fixed(raw)


def load_overrides(path: str) -> dict[str, Any]:
    """Parses and checks a --search_space JSON file."""
    try:
        with open(path, encoding="utf-8") as f:
            raw = json.load(f)
    except (OSError, ValueError) as e:
        raise ConfigError("search_space", f"cannot read {path}: {e}") from None
    if not isinstance(raw, dict):
        raise ConfigError("search_space", "must be a JSON object of {name: spec}")
    unknown = sorted(set(raw) - set(OVERRIDABLE))
    if unknown:
        raise ConfigError("search_space", f"unknown hyperparameter(s) {unknown}; "
                                          f"searchable: {', '.join(OVERRIDABLE)}")
    parsed = {name: _parse_entry(name, spec) for name, spec in raw.items()}
    optimizers = parsed.get("optimizer")
    if isinstance(optimizers, Choice) and not set(optimizers.values) <= set(OPTIMIZERS):
        raise ConfigError("search_space", f"optimizer choices must be in {OPTIMIZERS}")
    if not set(values_of(parsed.get("adversarial", Fixed("none")))) <= set(ADVERSARIAL_ATTACKS):
        raise ConfigError("search_space", f"adversarial values must be in {ADVERSARIAL_ATTACKS}")
    if not set(values_of(parsed.get("class_weight", Fixed("none")))) <= set(CLASS_WEIGHTS):
        raise ConfigError("search_space", f"class_weight values must be in {CLASS_WEIGHTS}")
    _check_augmentations(parsed.get("augmentations"))
    if not all(isinstance(size, int) and 8 <= size <= 4096
               for size in values_of(parsed.get("image_size", Fixed(224)))):
        raise ConfigError("search_space", "image_size values must be whole numbers of "
                                          "pixels between 8 and 4096")
    return parsed


def _check_augmentations(spec) -> None:
    if spec is None:
        return
    for value in values_of(spec):
        names = value.split(",") if isinstance(value, str) else None
        if names is None or not set(names) - {""} <= set(AUGMENTATIONS):
            raise ConfigError("search_space", "augmentations values must be comma-separated "
                                              f"names from {', '.join(AUGMENTATIONS)}, "
                                              f"got {value!r}")


def values_of(spec) -> tuple:
    """The values an entry can take (None for a range's)."""
    return spec.values if isinstance(spec, Choice) else (getattr(spec, "value", None),)


def build_space(prior: Prior, augment: bool, batch_size: int, overrides: dict[str, Any],
                image_sizes: tuple[int, ...] = (), imbalanced: bool = False) -> dict[str, Any]:
    """The default space with the overrides; SGD keeps its own learning rate only where
    some trials pick SGD and the overrides did not set one learning rate for all."""
    space = {**default_space(prior, augment, batch_size, image_sizes, imbalanced),
             **overrides}
    if ("sgd" not in values_of(space["optimizer"])
            or ("learning_rate" in overrides and SGD_LEARNING_RATE not in overrides)):
        del space[SGD_LEARNING_RATE]
    elif not set(values_of(space["optimizer"])) - {"sgd"}:
        del space["learning_rate"]  # every trial uses SGD's
    return space


def _flag_value(name: str, flat: dict[str, Any]) -> Any:
    if name == SGD_LEARNING_RATE:
        return flat["learning_rate"] if flat.get("optimizer") == "sgd" else None
    value = flat.get(name)
    if name in LISTS and isinstance(value, tuple):
        return ",".join(str(u) for u in value)
    return value


def start_at_flags(space: dict[str, Any], flat: dict[str, Any]) -> dict[str, Any]:
    """The space whose starting point is the run's own flag values wherever the space
    holds them (a choice lists the value, a range covers it): the search then starts from
    what the run would train without it."""
    started = dict(space)
    for name, spec in space.items():
        value = _flag_value(name, flat)
        if isinstance(spec, Choice) and value in spec.values:
            started[name] = Choice((value,) + tuple(v for v in spec.values if v != value))
        elif (isinstance(spec, Range) and isinstance(value, (int, float))
              and spec.min <= value <= spec.max):
            started[name] = dataclasses.replace(spec, start=float(value))
    return started


def holds(space: dict[str, Any], point: dict[str, Any]) -> bool:
    """Whether every value of `point` is one the space can take (a choice lists it, a
    range covers it, a fixed entry is it)."""
    def allowed(spec, value) -> bool:
        if isinstance(spec, Choice):
            return value in spec.values
        if isinstance(spec, Range):
            return isinstance(value, (int, float)) and spec.min <= value <= spec.max
        return spec is not None and spec.value == value
    return all(allowed(space.get(name), value) for name, value in point.items())


def describe(space: dict[str, Any]) -> str:
    return "; ".join(f"{name}={spec}" for name, spec in space.items())


def declare(hp, name: str, spec) -> Any:
    """Declares one entry on KerasTuner HyperParameters and returns its current value."""
    if isinstance(spec, Choice):
        return hp.Choice(name, list(spec.values))
    if isinstance(spec, Range):
        return hp.Float(name, spec.min, spec.max, sampling="log" if spec.log else "linear",
                        default=start_of(spec))
    return hp.Fixed(name, spec.value)


def start_of(spec: Range) -> float:
    """A range's starting value: its `start`, else its middle (geometric if log-sampled)."""
    if spec.start is not None:
        return spec.start
    value = (spec.min * spec.max) ** 0.5 if spec.log else (spec.min + spec.max) / 2
    return min(max(value, spec.min), spec.max)  # float round-off


def _active_when(name: str, space: dict[str, Any]) -> list | None:
    """The optimizers a learning-rate entry applies to; None if it always applies."""
    if SGD_LEARNING_RATE not in space or name not in ("learning_rate", SGD_LEARNING_RATE):
        return None
    optimizers = values_of(space["optimizer"])
    return ["sgd"] if name == SGD_LEARNING_RATE else [o for o in optimizers if o != "sgd"]


def declare_all(hp, space: dict[str, Any]) -> dict[str, Any]:
    """Declares the space on KerasTuner HyperParameters; returns the active values (a
    learning rate of an optimizer the trial did not pick is inactive: KerasTuner samples,
    records and logs it only where it applies)."""
    values = {}
    for name, spec in space.items():
        optimizers = _active_when(name, space)
        if optimizers is None:
            values[name] = declare(hp, name, spec)
            continue
        with hp.conditional_scope("optimizer", optimizers):
            value = declare(hp, name, spec)
        if value is not None:
            values[name] = value
    return values


def to_flag_values(values: dict[str, Any]) -> dict[str, Any]:
    """Trial values -> flag-style values for config.from_flat."""
    flat = dict(values)
    sgd_learning_rate = flat.pop(SGD_LEARNING_RATE, None)
    if sgd_learning_rate is not None and flat.get("optimizer") == "sgd":
        flat["learning_rate"] = sgd_learning_rate
    if "head_units" in flat and isinstance(flat["head_units"], str):
        flat["head_units"] = tuple(int(u) for u in flat["head_units"].split(",") if u)
    if isinstance(flat.get("augmentations"), str):
        flat["augmentations"] = tuple(a for a in flat["augmentations"].split(",") if a)
    return flat
