"""A BiT-style prior: dataset size -> a narrower default search space (pure Python).

Sources, and what is taken from each:
- Kolesnikov et al. 2020, "Big Transfer (BiT)", the BiT-HyperRule (bit_hyperrule.py in
  google-research/big_transfer): the schedule scales with dataset size, with thresholds
  at 20k and 500k examples, and short schedules suit small datasets.
- Kornblith, Shlens, Le 2019, "Do Better ImageNet Models Transfer Better?": fine-tuning
  beats fixed features except on very small datasets.
- Yosinski et al. 2014, "How transferable are features in deep neural networks?": top
  layers are the most task-specific, so they are the first to fine-tune.
- The Keras transfer-learning guide: freeze first, and keep BatchNorm in inference mode
  on small datasets.

The rule: below SMALL examples the space is frozen-first (depth 0 and the top one or two
blocks) with stronger regularisation; up to LARGE examples, shallow to full fine-tuning;
from LARGE on, deeper fine-tuning only.

The learning-rate range is the head's (phase 1; fine-tuning multiplies it by
--fine_tune_lr_factor). A freshly initialised head trained for a few epochs barely moves
below ~3e-4 with Adam, so above SMALL the range starts there (the Keras transfer guide
trains the head at 1e-3).
"""
from __future__ import annotations

import dataclasses

SMALL = 2_000
LARGE = 20_000


@dataclasses.dataclass(frozen=True)
class Prior:
    regime: str
    fine_tune_depths: tuple[int, ...]
    dropout: tuple[float, float]
    learning_rate: tuple[float, float]


def _depths(candidates: list[int], num_blocks: int) -> tuple[int, ...]:
    kept = sorted({d for d in candidates if 0 <= d <= num_blocks})
    return tuple(kept) + (-1,) if -1 in candidates else tuple(kept)


def prior(num_train_examples: int, num_blocks: int) -> Prior:
    """The default search ranges for a dataset of this size and a backbone of this depth."""
    quarter, half = max(1, num_blocks // 4), max(1, num_blocks // 2)
    if num_train_examples < SMALL:
        return Prior("small", _depths([0, 1, 2], num_blocks), (0.2, 0.6), (1e-4, 3e-3))
    if num_train_examples < LARGE:
        return Prior("medium", _depths([0, 2, quarter, half, -1], num_blocks), (0.0, 0.5),
                     (3e-4, 1e-2))
    return Prior("large", _depths([quarter, half, -1], num_blocks), (0.0, 0.3),
                 (3e-4, 1e-2))
