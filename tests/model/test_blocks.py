import pytest

from tftransfer.config.run_config import DEFAULT_BLOCK_PATTERN
from tftransfer.model.blocks import STEM, group_blocks, rate_factors, trainable_indices

LITE = ["stem/conv/kernel:0", "stem/bn/gamma:0", "blocks_0/dw/kernel:0", "blocks_0/bn/gamma:0",
        "blocks_1/dw/kernel:0", "blocks_10/dw/kernel:0", "head/conv/kernel:0", "head/bn/beta:0"]


def test_groups_stem_blocks_and_attaches_trailing_head_to_top_block():
    blocks = group_blocks(LITE, DEFAULT_BLOCK_PATTERN)
    assert [b.name for b in blocks] == [STEM, "blocks_0", "blocks_1", "blocks_10"]
    assert blocks[-1].indices == (5, 6, 7)


@pytest.mark.parametrize("name, block", [
    ("resnet/block4/unit03/a/conv/kernel:0", "block4/unit03"),
    ("block_16_project/kernel:0", "block_16"),
    ("efficientnetv2-b0/blocks_15/conv2d/kernel:0", "blocks_15"),
    ("MobilenetV2/expanded_conv_12/project/weights:0", "expanded_conv_12"),
    ("block5a_expand_conv/kernel:0", "block5a"),
])
def test_default_pattern_handles_common_hub_models(name, block):
    assert group_blocks(["stem/x:0", name], DEFAULT_BLOCK_PATTERN)[-1].name == block


def test_trainable_indices_by_depth():
    blocks = group_blocks(LITE, DEFAULT_BLOCK_PATTERN)
    assert trainable_indices(blocks, 0) == set()
    assert trainable_indices(blocks, 1) == {5, 6, 7}
    assert trainable_indices(blocks, 2) == {4, 5, 6, 7}
    assert trainable_indices(blocks, 3) == {2, 3, 4, 5, 6, 7}
    assert trainable_indices(blocks, -1) == set(range(len(LITE)))
    with pytest.raises(ValueError, match="only 3 blocks"):
        trainable_indices(blocks, 4)


def test_custom_pattern_overrides_default():
    names = ["a/layer1/k:0", "a/layer2/k:0", "a/layer2/b:0"]
    blocks = group_blocks(names, r"(layer\d)")
    assert [b.name for b in blocks] == ["layer1", "layer2"]


def test_rate_factors_decay_block_by_block_from_the_top():
    factors = rate_factors(group_blocks(LITE, DEFAULT_BLOCK_PATTERN), 0.5)
    assert [factors[i] for i in range(len(LITE))] == [0.125, 0.125, 0.25, 0.25, 0.5,
                                                      1.0, 1.0, 1.0]
