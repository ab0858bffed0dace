"""Groups a backbone's variable names into blocks, bottom to top (pure Python).

A variable's block is the first group of `pattern` found in its name. Variables before
the first block form the "stem"; unmatched variables after a block (a final conv, norm
or pooling projection) belong to the block below them, so "top N blocks" includes them.
"""
from __future__ import annotations

import dataclasses
import re

STEM = "stem"


@dataclasses.dataclass(frozen=True)
class Block:
    name: str
    indices: tuple[int, ...]   # positions in the module's variable list


def group_blocks(variable_names: list[str], pattern: str) -> list[Block]:
    regex = re.compile(pattern)
    order: list[str] = []
    members: dict[str, list[int]] = {}
    current = STEM
    for i, name in enumerate(variable_names):
        match = regex.search(name)
        if match:
            current = match.group(1)
        if current not in members:
            order.append(current)
            members[current] = []
        members[current].append(i)
    return [Block(name, tuple(members[name])) for name in order]


def trainable_indices(blocks: list[Block], depth: int) -> set[int]:
    """Variable positions of the top `depth` blocks (-1: every block and the stem)."""
    stacked = [b for b in blocks if b.name != STEM]
    if depth == -1:
        chosen = blocks
    elif depth > len(stacked):
        raise ValueError(f"fine_tune_depth={depth} but the backbone has only {len(stacked)} "
                         f"blocks (-1 trains all); adjust --block_pattern if that is wrong")
    else:
        chosen = stacked[len(stacked) - depth:] if depth else []
    return {i for block in chosen for i in block.indices}


def rate_factors(blocks: list[Block], decay: float) -> dict[int, float]:
    """{variable position: learning-rate factor}: the top block's variables 1, each block
    below `decay` times the one above, the stem as one block below the lowest."""
    stacked = [b for b in blocks if b.name != STEM]
    stem = [b for b in blocks if b.name == STEM]
    factors = {}
    for below_top, block in enumerate(reversed(stem + stacked)):
        factors.update({i: decay ** below_top for i in block.indices})
    return factors


def describe(blocks: list[Block], variable_names: list[str]) -> str:
    """One line per block: name, variable count, first variable."""
    return "\n".join(f"  {b.name}: {len(b.indices)} variables, e.g. {variable_names[b.indices[0]]}"
                     for b in blocks)
