"""Folder datasets (train/validation/test, one sub-folder per class) made from the offline
Fashion-MNIST, for benchmarks that must run as a user with a folder would:

- `fashion`: the ten classes, `per_class` training images each, at 28 px (grey PNGs);
- `coarse`: four groupings of the classes (tops, bottoms, footwear, bags-and-dresses),
  upscaled to `size` px RGB with a random tint per image: another class count, resolution
  and colour statistics than the backbone's ImageNet or Fashion-MNIST's own;
- `digits`: scikit-learn's 1,797 real handwritten digits at their own 8 px (grey PNGs),
  another domain at a far lower resolution; `per_class` caps the training images per class
  (about 110 at most), and validation and test take about 35 per class each.

`imbalance` R > 1 makes the training and validation splits long-tailed: the classes'
counts fall geometrically from `per_class` to `per_class / R` in a seeded order; the test
split stays balanced, so balanced accuracy is the mean recall over equal shares.

    python3 benchmarks/_folders.py KIND OUT_DIR [--per_class=N] [--size=PX] [--imbalance=R]
"""
from __future__ import annotations

import argparse
import os

import numpy as np

COARSE = {"tops": (0, 2, 4, 6), "bottoms": (1,), "footwear": (5, 7, 9), "other": (3, 8)}
FASHION_NAMES = ("tshirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt",
                 "sneaker", "bag", "boot")


def _fashion_arrays():
    import tensorflow_datasets as tfds

    from tftransfer import assets

    assets.build_all()
    splits = tfds.load("fashion_mnist", data_dir=assets.tfds_dir(), batch_size=-1,
                       as_supervised=True)
    train, test = (tuple(np.asarray(t) for t in tfds.as_numpy(splits[s])) for s in ("train",
                                                                                    "test"))
    return train, test


def _write(folder, images, names, transform) -> None:
    from PIL import Image

    for i, (image, name) in enumerate(zip(images, names)):
        os.makedirs(os.path.join(folder, name), exist_ok=True)
        Image.fromarray(transform(image[..., 0], i)).save(os.path.join(folder, name, f"{i}.png"))


def _tail(groups, imbalance: float, rng) -> dict[str, float]:
    """Each class's share of `per_class` in a long-tailed split (1.0 down to 1/imbalance)."""
    names = list(groups)
    order = rng.permutation(len(names))
    steps = max(len(names) - 1, 1)
    return {names[i]: imbalance ** (-rank / steps) for rank, i in enumerate(order)}


def _digits_arrays(rng):
    """(train, validation, test) of scikit-learn's digits, shuffled with `rng`."""
    from sklearn import datasets

    digits = datasets.load_digits()
    images = (digits.images * (255 / 16)).round().astype(np.uint8)[..., None]
    order = rng.permutation(len(images))
    images, labels = images[order], digits.target[order]
    test, validation = len(images) // 5, len(images) // 5
    return ((images[test + validation:], labels[test + validation:]),
            (images[test:test + validation], labels[test:test + validation]),
            (images[:test], labels[:test]))


def _make_digits(out_dir: str, per_class: int, seed: int) -> str:
    rng = np.random.default_rng(seed)
    splits = dict(zip(("train", "validation", "test"), _digits_arrays(rng)))
    for split, (images, labels) in splits.items():
        if split == "train":
            kept = np.concatenate([np.flatnonzero(labels == k)[:per_class] for k in range(10)])
            images, labels = images[kept], labels[kept]
        _write(os.path.join(out_dir, split), images, [f"digit{k}" for k in labels],
               lambda image, i: image)
    return out_dir


def make(kind: str, out_dir: str, per_class: int, size: int = 64, seed: int = 0,
         imbalance: float = 1.0) -> str:
    """Writes the dataset under `out_dir` (if not there yet) and returns `out_dir`."""
    if os.path.isdir(os.path.join(out_dir, "test")):
        return out_dir
    if kind == "digits":
        return _make_digits(out_dir, per_class, seed)
    (train_x, train_y), (test_x, test_y) = _fashion_arrays()
    rng = np.random.default_rng(seed)
    if kind == "fashion":
        groups = {name: (label,) for label, name in enumerate(FASHION_NAMES)}
        transform = lambda image, i: image  # noqa: E731
    else:
        groups = COARSE
        tints = rng.uniform(0.4, 1.0, size=(100_000, 3))

        def transform(image, i):
            from PIL import Image

            big = np.asarray(Image.fromarray(image).resize((size, size), Image.BILINEAR))
            return (big[..., None] * tints[i % len(tints)]).astype(np.uint8)
    counts = {"train": per_class, "validation": max(per_class // 4, 10),
              "test": max(per_class // 2, 25)}
    share = _tail(groups, imbalance, rng)
    for split, count in counts.items():
        source_x, source_y = (test_x, test_y) if split == "test" else (train_x, train_y)
        images, names = [], []
        for name, labels in groups.items():
            mask = np.isin(source_y, labels)
            pool = np.flatnonzero(mask)
            if split == "validation":
                pool = pool[len(pool) // 2:]  # disjoint from the training half
            elif split == "train":
                pool = pool[:len(pool) // 2]
            wanted = count if split == "test" else max(round(count * share[name]), 2)
            picked = rng.choice(pool, min(wanted, len(pool)), replace=False)
            images.extend(source_x[picked])
            names.extend([name] * len(picked))
        _write(os.path.join(out_dir, split), images, names, transform)
    return out_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("kind", choices=("fashion", "coarse", "digits"))
    parser.add_argument("out_dir")
    parser.add_argument("--per_class", type=int, default=300)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--imbalance", type=float, default=1.0)
    args = parser.parse_args()
    print(make(args.kind, args.out_dir, args.per_class, args.size, imbalance=args.imbalance))


if __name__ == "__main__":
    main()
