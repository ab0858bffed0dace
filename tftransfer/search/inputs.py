"""What a search's trials train and validate on: a seeded subset of the training split
and the validation split at each searched resolution, with cached backbone features when
frozen trials without augmentation can use them (feature_cache.py)."""
from __future__ import annotations

import dataclasses
import functools
import os
from typing import Callable

import tensorflow as tf

from tftransfer.config import cluster
from tftransfer.config.errors import UserError
from tftransfer.data import pipeline as data_lib
from tftransfer.model import classifier as model_lib
from tftransfer.outputs import run_folder
from tftransfer.search import feature_cache as features_lib, space as search_space


def image_sizes(data: data_lib.DataBundle) -> tuple[int, ...]:
    """The resolutions to search: from the data's own size when --image_size left it open."""
    if data.own_size is None:
        return ()
    return search_space.resolutions(data.own_size, data.native_size)


@dataclasses.dataclass
class SearchData:
    """What trials at one resolution train and validate on, prepared once."""
    data: data_lib.DataBundle
    train: object             # unbatched uint8 search subset of the training split
    train_size: int
    extract: Callable[[], dict] | None = None   # the cached features; None: not used

    @property
    def cacheable(self) -> bool:
        return self.extract is not None

    @functools.cached_property
    def cached(self) -> dict | None:
        """{"train": (features, labels) tensors, "validation": ...}, extracted when the
        first trial that trains on them asks (a budget may end the search before one)."""
        return None if self.extract is None else self.extract()


class SearchInputs:
    """Each searched resolution's SearchData, prepared when a trial first asks for it:
    the run's own resolution's at once (its errors come before any trial), though its
    features wait, like every size's, for the first trial that trains on them."""

    def __init__(self, cfg, data: data_lib.DataBundle, space: dict, replicas: int, backbone):
        """`backbone`: a backbone at the data's size on a module of its own, for features."""
        self.cfg, self.data, self.space, self.replicas = cfg, data, space, replicas
        self.by_size = {data.image_size: prepare(cfg, data, space, lambda: backbone)}

    def at(self, image_size: int) -> SearchData:
        if image_size not in self.by_size:
            cfg = dataclasses.replace(self.cfg, data=dataclasses.replace(
                self.cfg.data, image_size=image_size))
            data = data_lib.at_image_size(self.data, cfg.data, cfg.seed, os.path.join(
                cfg.output_dir, run_folder.CACHE), self.replicas)
            # Its own module (trials change the weights of the one they share), loaded once
            # for both splits and only if their features are not on disk.
            backbone = functools.cache(
                lambda: model_lib.build_backbone(cfg.backbone, image_size)[0])
            self.by_size[image_size] = prepare(cfg, data, self.space, backbone)
        return self.by_size[image_size]


def may_use_cache(space: dict) -> bool:
    def allows(name, value):
        spec = space[name]
        if isinstance(spec, search_space.Choice):
            return value in spec.values
        return isinstance(spec, search_space.Fixed) and spec.value == value
    return allows("fine_tune_depth", 0) and allows("augment", False)


def no_validation(d) -> UserError:
    """The search's error when the data gave no validation examples, naming why."""
    if d.validation_fraction == 0:
        why = ("--validation_fraction=0 and the data has no validation split "
               "(--validation_split, or a validation/ folder)")
    else:
        why = (f"--validation_fraction={d.validation_fraction:g} of the training images "
               f"rounds to none in every class; raise it or add a validation/ folder")
    return UserError(f"a search needs validation data: {why}")


def prepare(cfg, data: data_lib.DataBundle, space: dict, backbone) -> SearchData:
    """`backbone()`: the backbone that extracts cached features, if they are not on disk."""
    train, size = data_lib.subset(data.train_unbatched, data.sizes["train"],
                                  cfg.search.search_fraction, cfg.seed)
    if data.validation is None:
        raise no_validation(cfg.data)
    if not may_use_cache(space) or cluster.is_search_chief():   # the chief runs no trials
        return SearchData(data, train, size)
    cache = features_lib.FeatureCache(os.path.join(cfg.output_dir, run_folder.FEATURES))
    common = dict(handle=cfg.backbone.hub_handle, image_size=cfg.data.image_size,
                  data=data.fingerprint, seed=cfg.seed)
    splits = {"train": (data_lib.batched(train, cfg.data.batch_size),
                        dict(split="train", fraction=cfg.search.search_fraction)),
              "validation": (data.validation, dict(split="validation"))}

    def extract() -> dict:
        # Held as tensors, which every trial's feature_dataset reads without a copy.
        return {split: tuple(map(tf.constant, cache.get(
                    features_lib.cache_key(**common, **key), split, backbone, images,
                    cfg.data.image_size)))
                for split, (images, key) in splits.items()}
    return SearchData(data, train, size, extract)
