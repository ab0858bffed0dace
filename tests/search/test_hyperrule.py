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


def test_small_images_are_tried_fully_fine_tuned_at_about_twice_their_size():
    from tftransfer.search.hyperrule import SMALL_IMAGE_POINT, small_image_point

    sizes = (224, 32, 64, 128)
    assert small_image_point(8, sizes) == {"image_size": 32, **SMALL_IMAGE_POINT}
    assert small_image_point(28, sizes)["image_size"] == 64
    assert small_image_point(64, (224, 64, 128))["image_size"] == 128
    assert small_image_point(100, (224, 128))["image_size"] == 128   # the largest below native
    assert SMALL_IMAGE_POINT["fine_tune_depth"] == -1 and not SMALL_IMAGE_POINT["augment"]


def test_no_small_image_point_when_the_resolution_is_not_searched():
    from tftransfer.search.hyperrule import small_image_point

    assert small_image_point(None, (224, 32)) is None    # --image_size was given
    assert small_image_point(300, (224,)) is None        # images near the native size
