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

Small images get a second informed point, tried right after the starting point: every
block fine-tuned at about twice the images' own size, BatchNorm statistics adapting, a
phase-2 rate of half the head's, no augmentation (SMALL_IMAGE_POINT). Upscaled 8-px
digits scored 98.3 % that way in issue 21 against 87.7 % frozen (here: 94.2 % at 32 px in
15 epochs against 86-88 % frozen at 128 px); 28-px clothes (1,000 images) 81.6 % against
80.4 % frozen at 128 px, augmented; the default factor of 0.1 at 64 px gave 68.2 %. On 30
images per class frozen features at 224 px won by far, so it is a trial like any other:
the do-no-harm rule (selection.py) takes it only when it beats the start clearly.

The learning-rate range is the head's (phase 1; fine-tuning multiplies it by
--fine_tune_lr_factor). A freshly initialised head trained for a few epochs barely moves
below ~3e-4 with Adam, so above SMALL the range starts there (the Keras transfer guide
trains the head at 1e-3).
"""
from __future__ import annotations

import dataclasses

SMALL = 2_000
LARGE = 20_000
# The small-image point's values, besides its resolution.
SMALL_IMAGE_POINT = {"fine_tune_depth": -1, "fine_tune_lr_factor": 0.5,
                     "bn_inference": False, "augment": False}
SMALL_IMAGE_UPSCALE = 2


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


def small_image_point(own_size: int | None, sizes: tuple[int, ...]) -> dict | None:
    """The second point a search tries when the data's images are smaller than the
    backbone's input: SMALL_IMAGE_POINT at the smallest searched size of at least
    SMALL_IMAGE_UPSCALE x `own_size` (else the largest below the native size, the
    largest of `sizes`). None when the resolution is not searched."""
    if own_size is None or len(sizes) < 2:
        return None
    below_native = sorted(s for s in sizes if s < max(sizes))
    wide_enough = [s for s in below_native if s >= SMALL_IMAGE_UPSCALE * own_size]
    return {"image_size": wide_enough[0] if wide_enough else below_native[-1],
            **SMALL_IMAGE_POINT}
