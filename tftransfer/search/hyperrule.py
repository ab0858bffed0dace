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

The rule orders the fine-tune depths, it never excludes one: every regime holds frozen,
the top blocks, half and all of them, because what wins differs by dataset (on 1,797 8x8
digits full fine-tuning beat every frozen or shallow setting by 9 points; on 30 images per
class frozen features won). The first depth is where the search starts: frozen below SMALL
examples, frozen up to LARGE, a quarter of the blocks from LARGE on. Small data also gets
stronger regularisation.

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


def _depths(ordered: list[int], num_blocks: int) -> tuple[int, ...]:
    """The candidates this backbone has, first-come order kept, -1 (all blocks) last."""
    kept = []
    for depth in ordered:
        if 0 <= depth <= num_blocks and depth not in kept:
            kept.append(depth)
    return tuple(kept) + (-1,) if num_blocks else tuple(kept)


def prior(num_train_examples: int, num_blocks: int) -> Prior:
    """The default search ranges for a dataset of this size and a backbone of this depth."""
    quarter, half = max(1, num_blocks // 4), max(1, num_blocks // 2)
    if num_train_examples < SMALL:
        return Prior("small", _depths([0, 1, 2, half], num_blocks), (0.2, 0.6), (1e-4, 3e-3))
    if num_train_examples < LARGE:
        return Prior("medium", _depths([0, 2, quarter, half], num_blocks), (0.0, 0.5),
                     (3e-4, 1e-2))
    return Prior("large", _depths([quarter, 0, half], num_blocks), (0.0, 0.3),
                 (3e-4, 1e-2))
