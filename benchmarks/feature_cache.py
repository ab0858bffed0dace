"""Frozen-head trial time with the backbone in every step / with cached features.

Runs both on the same real data (Fashion-MNIST, Lite0 at --image_size), one after the
other in one process, and prints the one-time extraction cost and the ratio last.

    python3 benchmarks/feature_cache.py [--quick]
"""
from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time

from tftransfer import assets, config as config_lib, data as data_lib, features
from tftransfer import model as model_lib
from tftransfer.validation import validate


def _config(out: str, examples: int, image_size: int) -> config_lib.RunConfig:
    handle = assets.build_all()["hub_handle"]
    return validate(config_lib.from_flat({
        "dataset": "fashion_mnist", "data_dir": assets.tfds_dir(), "hub_handle": handle,
        "train_split": f"train[:{examples}]", "test_split": "", "image_size": image_size,
        "batch_size": 64, "augment": False, "output_dir": out, "epochs": 1}))


def _timed_epoch(model, train, validation) -> float:
    model.fit(train, validation_data=validation, epochs=1, verbose=0)  # trace and warm up
    start = time.perf_counter()
    model.fit(train, validation_data=validation, epochs=1, verbose=0)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small smoke run")
    parser.add_argument("--image_size", type=int, default=48)
    args = parser.parse_args()
    examples = 640 if args.quick else 6000
    out = tempfile.mkdtemp(prefix="bench_feature_cache_")
    cfg = _config(out, examples, args.image_size)
    data = data_lib.load_data(cfg.data, cfg.seed, "")
    backbone, width = model_lib.build_backbone(cfg.backbone, cfg.data.image_size)
    head = model_lib.build_head(width, data.num_classes, cfg.head)
    classifier = model_lib.build_classifier(backbone, head, cfg.data.image_size)
    model_lib.compile_for_phase(classifier, cfg.train, data.num_classes, 0.1, 1e-3, 100, 0)
    with_backbone = _timed_epoch(classifier, data.train, data.validation)

    cache = features.FeatureCache(f"{out}/features")
    start = time.perf_counter()
    train_batches = data_lib.batched(data.train_unbatched, cfg.data.batch_size)
    cached = {split: cache.get(split, split, lambda: backbone, images, cfg.data.image_size)
              for split, images in (("train", train_batches), ("validation", data.validation))}
    extraction = time.perf_counter() - start
    head_only = model_lib.build_head(width, data.num_classes, cfg.head)
    model_lib.compile_for_phase(head_only, cfg.train, data.num_classes, 0.1, 1e-3, 100, 0)
    with_cache = _timed_epoch(
        head_only, features.feature_dataset(*cached["train"], 64, shuffle_seed=0),
        features.feature_dataset(*cached["validation"], 64))

    repaid_after = extraction / max(with_backbone - with_cache, 1e-9)
    print(f"examples: {data.sizes}, image size {cfg.data.image_size}")
    print(f"epoch with backbone: {with_backbone:.2f} s; with cached features: "
          f"{with_cache:.3f} s; one-time extraction: {extraction:.2f} s "
          f"(repaid after {repaid_after:.2f} trial-epochs)")
    print(f"feature_cache speed-up: {with_backbone / with_cache:.1f}x")


if __name__ == "__main__":
    main()
