import os
import threading
import time

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


def test_processes_sharing_the_cache_extract_once_and_redo_a_damaged_file(
        tmp_path, tiny_hub_dir, color_folder):
    """Two caches on one folder (as two tuner workers): one extracts while the other waits,
    then reads the finished file. A file cut short is extracted again, not trusted."""
    cfg = make_config(tmp_path, dataset=color_folder, hub_handle=tiny_hub_dir, augment=False)
    data = data_lib.load_data(cfg.data, cfg.seed, "")
    backbone, _ = model_lib.build_backbone(cfg.backbone, cfg.data.image_size)

    def slow_backbone():
        time.sleep(1.0)   # the other cache is waiting on the lock meanwhile
        return backbone

    caches = [features.FeatureCache(str(tmp_path / "features")) for _ in range(2)]
    results = [None, None]

    def get(index):
        results[index] = caches[index].get("k", "validation", slow_backbone, data.validation, 24)

    threads = [threading.Thread(target=get, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(cache.extractions for cache in caches) == 1
    np.testing.assert_array_equal(results[0][0], results[1][0])

    path, before = caches[0].path("k", "validation"), caches[0].extractions
    with open(path, "r+b") as stored:
        stored.truncate(os.path.getsize(path) // 2)
    again, _ = caches[0].get("k", "validation", lambda: backbone, data.validation, 24)
    assert caches[0].extractions == before + 1
    np.testing.assert_allclose(again, results[0][0], atol=1e-6)
