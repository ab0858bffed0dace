from tftransfer.search.hyperrule import LARGE, SMALL, prior


def test_tiny_datasets_search_frozen_first_but_can_reach_every_block():
    p = prior(500, num_blocks=16)
    assert p.regime == "small" and p.fine_tune_depths == (0, 1, 2, 8, -1)
    assert p.dropout[0] >= 0.2


def test_medium_datasets_range_from_frozen_to_full():
    p = prior(SMALL + 1, num_blocks=16)
    assert p.regime == "medium" and p.fine_tune_depths == (0, 2, 4, 8, -1)


def test_large_datasets_start_deeper_and_keep_frozen_in_the_space():
    p = prior(LARGE * 3, num_blocks=16)
    assert p.regime == "large" and p.fine_tune_depths == (4, 0, 8, -1)


def test_depths_never_exceed_the_backbone():
    assert prior(100, num_blocks=1).fine_tune_depths == (0, 1, -1)
    assert prior(10_000, num_blocks=3).fine_tune_depths == (0, 2, 1, -1)
    assert prior(100, num_blocks=0).fine_tune_depths == (0,)
