import numpy as np
from conftest import make_config

from tftransfer.data import pipeline as data_lib
from tftransfer.model import classifier as model_lib, compile as compile_lib
from tftransfer.search import feature_cache as features


def _never_called():
    raise AssertionError("the backbone ran again instead of the cache")


def test_features_are_computed_once_and_the_head_transfers_back(tmp_path, tiny_hub_dir,
                                                                color_folder):
    cfg = make_config(tmp_path, dataset=color_folder, hub_handle=tiny_hub_dir, augment=False)
    data = data_lib.load_data(cfg.data, cfg.seed, "")
    backbone, width = model_lib.build_backbone(cfg.backbone, cfg.data.image_size)
    cache = features.FeatureCache(str(tmp_path / "features"))
    key = features.cache_key(handle=tiny_hub_dir, split="validation")
    images = data.validation
    feats, labels = cache.get(key, "validation", lambda: backbone, images, 24)
    again, _ = cache.get(key, "validation", _never_called, images, 24)
    assert cache.extractions == 1 and np.array_equal(feats, again)
    assert feats.shape == (data.sizes["validation"], width)

    head = model_lib.build_head(width, data.num_classes, cfg.head)
    compile_lib.compile_for_phase(head, cfg.train, 3, 0.0, 0.01, 10, 0)
    head.fit(features.feature_dataset(feats, labels, 4, shuffle_seed=0), epochs=2, verbose=0)
    classifier = model_lib.TransferClassifier(backbone, head, 24)
    stacked = np.concatenate([x for x, _ in images.as_numpy_iterator()])
    np.testing.assert_allclose(classifier.predict(stacked, verbose=0),
                               head.predict(feats, verbose=0), atol=1e-5)
    np.testing.assert_array_equal(labels, np.concatenate([y for _, y in images]))
