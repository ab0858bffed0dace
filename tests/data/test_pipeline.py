import dataclasses
import io
import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from conftest import write_color_folder
from PIL import Image

from tftransfer.config.errors import DataError
from tftransfer.config.run_config import DataConfig
from tftransfer.data import pipeline as data_lib, preprocess
from tftransfer.data.folder_source import load_folder


def _cfg(dataset, **changes):
    return dataclasses.replace(DataConfig(dataset=dataset, image_size=16, batch_size=8), **changes)


def _save(path, array, **kwargs):
    Image.fromarray(array).save(path, **kwargs)


def _odd_files_folder(root):
    """Real-world files next to clean ones: every case the folder reader must survive."""
    write_color_folder(root, per_class=6)
    odd = os.path.join(root, "class_0")
    rgb = np.full((20, 30, 3), 120, np.uint8)
    _save(os.path.join(odd, "rgba.png"), np.dstack([rgb, np.full((20, 30), 9, np.uint8)]))
    _save(os.path.join(odd, "grey.png"), rgb[..., 0])
    _save(os.path.join(odd, "deep.png"), (rgb[..., 0].astype(np.uint16) * 257))
    _save(os.path.join(odd, "anim.gif"), rgb)
    _save(os.path.join(odd, "bitmap.bmp"), rgb)
    _save(os.path.join(odd, "cmyk.jpg"), rgb, format="JPEG")
    Image.fromarray(rgb).convert("CMYK").save(os.path.join(odd, "cmyk2.jpg"))
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG")
    open(os.path.join(odd, "truncated.jpg"), "wb").write(buffer.getvalue()[:200])
    open(os.path.join(odd, "empty.png"), "wb").close()
    open(os.path.join(odd, "text.jpg"), "w").write("not an image")
    open(os.path.join(odd, "notes.txt"), "w").write("hello")
    return str(root)


def test_odd_files_are_decoded_or_skipped_and_counted(tmp_path):
    splits = load_folder(_odd_files_folder(tmp_path), 0.0, 0.0, seed=1)
    assert splits.skipped == {"not an image file extension": 1,
                              "corrupt or unsupported image": 3}
    kept = {os.path.basename(p) for p, _ in splits.files["train"]}
    assert {"rgba.png", "grey.png", "deep.png", "anim.gif", "bitmap.bmp", "cmyk2.jpg"} <= kept
    bundle = data_lib.load_data(_cfg(str(tmp_path), validation_fraction=0.0, test_fraction=0.0,
                                     augment=False), 0, str(tmp_path / "cache"))
    images = np.concatenate([x for x, _ in bundle.train.as_numpy_iterator()])
    assert images.shape == (len(splits.files["train"]), 16, 16, 3) == (25, 16, 16, 3)
    assert images.dtype == np.float32
    assert 0.0 <= images.min() and images.max() <= 1.0


def test_stratified_split_is_seeded_and_keeps_every_class(color_folder):
    first = load_folder(color_folder, 0.2, 0.2, seed=3)
    again = load_folder(color_folder, 0.2, 0.2, seed=3)
    other = load_folder(color_folder, 0.2, 0.2, seed=4)
    assert first.files == again.files and first.files != other.files
    for split, expected in (("train", 18), ("validation", 6), ("test", 6)):
        labels = [label for _, label in first.files[split]]
        assert [labels.count(c) for c in range(3)] == [expected] * 3
    assert first.class_names == ["class_0", "class_1", "class_2"]


def test_pre_split_folders_are_kept(tmp_path):
    for split in ("train", "validation", "test"):
        write_color_folder(tmp_path / split, per_class=4, seed=len(split))
    splits = load_folder(str(tmp_path), 0.5, 0.5, seed=0)
    assert {s: len(f) for s, f in splits.files.items()} == {
        "train": 12, "validation": 12, "test": 12}


def test_a_pre_split_folder_without_validation_holds_out_a_stratified_share(tmp_path):
    for split in ("train", "test"):
        write_color_folder(tmp_path / split, per_class=10, seed=len(split))
    splits = load_folder(str(tmp_path), 0.2, 0.5, seed=0)
    assert {s: len(f) for s, f in splits.files.items()} == {
        "train": 24, "validation": 6, "test": 30}   # test/ kept whole; test_fraction unused
    assert [label for _, label in splits.files["validation"]].count(0) == 2
    assert load_folder(str(tmp_path), 0.2, 0.5, seed=0).files == splits.files   # seeded
    kept = load_folder(str(tmp_path), 0.0, 0.5, seed=0)
    assert (len(kept.files["train"]), kept.files["validation"]) == (30, [])


def test_empty_class_folder_is_a_clear_error(tmp_path):
    write_color_folder(tmp_path, per_class=4)
    os.makedirs(tmp_path / "class_empty")
    with pytest.raises(DataError, match=r"without usable training images: \['class_empty'\]"):
        load_folder(str(tmp_path), 0.0, 0.0, seed=0)


def test_single_class_is_a_clear_error(tmp_path):
    write_color_folder(tmp_path, per_class=4)
    for name in ("class_1", "class_2"):
        for f in os.listdir(tmp_path / name):
            os.remove(tmp_path / name / f)
        os.rmdir(tmp_path / name)
    with pytest.raises(DataError, match="need at least 2 class folders, found 1"):
        load_folder(str(tmp_path), 0.0, 0.0, seed=0)


def test_pipeline_batches_augments_train_only_and_caches(color_folder, tmp_path):
    bundle = data_lib.load_data(_cfg(color_folder, augmentations=("flip", "crop", "contrast"),
                                     cache="disk"), 0, str(tmp_path))
    x, y = next(iter(bundle.train))
    assert x.shape == (8, 16, 16, 3) and y.dtype == tf.int32
    first = np.concatenate([x for x, _ in bundle.validation.as_numpy_iterator()])
    second = np.concatenate([x for x, _ in bundle.validation.as_numpy_iterator()])
    np.testing.assert_array_equal(first, second)
    assert bundle.sizes == {"train": 72, "validation": 9, "test": 9}
    assert any(name.startswith("train_16px") for name in os.listdir(tmp_path))


def test_serving_preprocessing_matches_the_pipeline(tmp_path):
    root = write_color_folder(tmp_path, per_class=2, size=(37, 23))
    bundle = data_lib.load_data(_cfg(root, validation_fraction=0.0, test_fraction=0.0,
                                     augment=False), 0, "")
    pipeline_images = np.concatenate([x for x, _ in bundle.train.as_numpy_iterator()])
    for name in ("0.jpg", "1.png"):
        encoded = tf.io.read_file(os.path.join(root, "class_2", name))
        served = preprocess.preprocess_encoded(encoded, 16).numpy()
        assert any(np.array_equal(served, image) for image in pipeline_images)


def test_tfds_source_with_split_strings_and_holdout(fashion_mnist_dir):
    cfg = _cfg("fashion_mnist", data_dir=fashion_mnist_dir, train_split="train[:200]",
               test_split="test[:50]", validation_fraction=0.25, cache="none")
    bundle = data_lib.load_data(cfg, 0, "")
    assert bundle.sizes == {"train": 150, "validation": 50, "test": 50}
    assert bundle.class_names[0] == "T-shirt/top" and bundle.num_classes == 10
    x, _ = next(iter(bundle.test))
    assert x.shape == (8, 16, 16, 3)
    np.testing.assert_array_equal(x[..., 0], x[..., 2])  # grey repeated into RGB


@pytest.mark.parametrize("byte_cap", [data_lib.RESIZE_BATCH_BYTES, 7 * 28 * 28])
def test_equal_sized_tfds_images_resize_in_batches_to_the_served_pixels(
        fashion_mnist_dir, byte_cap, monkeypatch):
    """The batched resize (256 or, capped by bytes, 7 images a call; the last batch partial)
    gives exactly what the serving signature's per-image, dynamic-shape path gives."""
    monkeypatch.setattr(data_lib, "RESIZE_BATCH_BYTES", byte_cap)
    cfg = _cfg("fashion_mnist", data_dir=fashion_mnist_dir, train_split="train[:300]",
               validation_fraction=0.0, cache="none", image_size=20)
    bundle = data_lib.load_data(cfg, 0, "")
    assert 300 > data_lib.RESIZE_BATCH and bundle.train_unbatched.cardinality() == 300
    served = tf.function(lambda image: preprocess.preprocess_pixels(image, 20),
                         input_signature=[tf.TensorSpec([None, None, None], tf.uint8)])
    raw = tfds.builder("fashion_mnist", data_dir=fashion_mnist_dir).as_dataset(
        split="train[:300]", as_supervised=True)
    for (image, label), (resized, resized_label) in zip(raw, bundle.train_unbatched):
        assert int(label) == int(resized_label)
        np.testing.assert_array_equal(np.round(served(image).numpy() * 255), resized)


@pytest.mark.parametrize("changes, message", [
    ({"dataset": "no_such_dataset_xyz"}, "unknown TFDS dataset 'no_such_dataset_xyz'"),
    ({"train_split": "train[:0]"}, r"--train_split: split 'train\[:0\]' .* selects no examples"),
    ({"test_split": "bogus"}, "--test_split: invalid split 'bogus'"),
])
def test_tfds_errors_are_one_line(fashion_mnist_dir, changes, message):
    cfg = _cfg(changes.pop("dataset", "fashion_mnist"), data_dir=fashion_mnist_dir, **changes)
    with pytest.raises(DataError, match=message) as info:
        data_lib.load_data(cfg, 0, "")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("batch, size, replicas, expected", [
    (32, 1000, 1, 32), (32, 1024, 2, 32), (32, 1001, 2, 32), (32, 1025, 2, 30), (16, 9, 2, 6),
    (16, 8, 2, 8), (64, 65, 4, 60)])
def test_replica_safe_batch_size(batch, size, replicas, expected):
    chosen = data_lib.replica_safe_batch_size(batch, size, replicas)
    assert chosen == expected and chosen % replicas == 0
    assert size % chosen == 0 or size % chosen >= replicas


def test_a_split_smaller_than_the_replicas_is_an_error():
    with pytest.raises(DataError, match="cannot feed 4 replicas"):
        data_lib.replica_safe_batch_size(8, 3, 4)


def test_workers_shard_every_split_by_data_not_by_file(color_folder, fashion_mnist_dir,
                                                       tmp_path):
    """Multi-worker input: TFDS's few record files and a folder's decoded images are both
    split example by example (identical seeded shuffles on every worker)."""
    folder = data_lib.load_data(_cfg(color_folder), 0, str(tmp_path))
    tfds = data_lib.load_data(_cfg("fashion_mnist", data_dir=fashion_mnist_dir,
                                   train_split="train[:40]", test_split="test[:16]"), 0, "")
    for bundle in (folder, tfds):
        for split in (bundle.train, bundle.validation, bundle.test):
            policy = split.options().experimental_distribute.auto_shard_policy
            assert policy == tf.data.experimental.AutoShardPolicy.DATA


def test_a_huge_image_is_decoded_and_resized_like_any_other(tmp_path):
    root = write_color_folder(tmp_path, per_class=4)
    Image.new("RGB", (8000, 8000), (200, 40, 40)).save(
        os.path.join(root, "class_0", "huge.jpg"), quality=50)
    bundle = data_lib.load_data(_cfg(root, validation_fraction=0.0, test_fraction=0.0,
                                     augment=False), 0, "")
    assert bundle.sizes == {"train": 13} and bundle.skipped == {}
    images = np.concatenate([x for x, _ in bundle.train.as_numpy_iterator()])
    huge = preprocess.preprocess_encoded(
        tf.io.read_file(os.path.join(root, "class_0", "huge.jpg")), 16).numpy()
    assert any(np.array_equal(huge, image) for image in images)
    np.testing.assert_allclose(huge[8, 8], np.array([200, 40, 40]) / 255, atol=0.02)


def test_class_and_file_names_with_spaces_and_non_ascii_letters(tmp_path):
    write_color_folder(tmp_path / "src", per_class=3)
    names = ["grün", "red apple", "青い"]
    os.makedirs(tmp_path / "data")
    for name, source in zip(names, ("class_0", "class_1", "class_2")):
        os.rename(tmp_path / "src" / source, tmp_path / "data" / name)
    os.rename(tmp_path / "data" / "青い" / "0.jpg", tmp_path / "data" / "青い" / "ß é 0.jpg")
    bundle = data_lib.load_data(_cfg(str(tmp_path / "data"), validation_fraction=0.0,
                                     test_fraction=0.0, augment=False), 0, "")
    assert bundle.class_names == names and bundle.sizes == {"train": 9}
    labels = np.concatenate([y for _, y in bundle.train.as_numpy_iterator()])
    assert sorted(labels.tolist()) == [0, 0, 0, 1, 1, 1, 2, 2, 2]


def test_a_searched_config_gets_a_new_bundle_and_leaves_the_loaded_one_alone(color_folder):
    cfg = _cfg(color_folder, validation_fraction=0.0, test_fraction=0.0, augment=False)
    bundle = data_lib.load_data(cfg, 0, "")
    with pytest.raises(dataclasses.FrozenInstanceError):
        bundle.train = bundle.train_unbatched
    searched = data_lib.with_train_split(bundle, dataclasses.replace(cfg, batch_size=5), 0, 2)
    assert searched is not bundle and searched.train_unbatched is bundle.train_unbatched
    assert searched.sizes == bundle.sizes == {"train": 90}
    assert [len(y) for _, y in bundle.train.as_numpy_iterator()] == [8] * 11 + [2]
    assert [len(y) for _, y in searched.train.as_numpy_iterator()] == [4] * 22 + [2]
    labels = np.concatenate([y for _, y in searched.train.as_numpy_iterator()])
    assert sorted(labels.tolist()) == sorted(
        np.concatenate([y for _, y in bundle.train.as_numpy_iterator()]).tolist())


def test_an_open_image_size_measures_the_data_s_own_and_resizes_to_native(color_folder):
    bundle = data_lib.load_data(_cfg(color_folder, image_size=0), 0, "")
    assert bundle.own_size == 44 and bundle.image_size == data_lib.NATIVE_IMAGE_SIZE
    images, _ = next(iter(bundle.validation))
    assert images.shape[1:] == (224, 224, 3)
    fixed = data_lib.load_data(_cfg(color_folder), 0, "")
    assert fixed.own_size is None and fixed.image_size == 16


def test_an_open_image_size_resizes_to_the_backbones_native_size(color_folder):
    from tftransfer.search import inputs as inputs_lib

    bundle = data_lib.load_data(_cfg(color_folder, image_size=0), 0, "", native_size=96)
    assert bundle.image_size == bundle.native_size == 96
    images, _ = next(iter(bundle.validation))
    assert images.shape[1:] == (96, 96, 3)
    small = data_lib.at_image_size(bundle, _cfg(color_folder, image_size=32), 0, "")
    assert small.native_size == 96
    assert inputs_lib.image_sizes(small) == (96, 64)  # the native size, then the data's own


def test_another_size_resizes_the_same_examples(color_folder):
    bundle = data_lib.load_data(_cfg(color_folder, image_size=0), 0, "")
    small = data_lib.at_image_size(bundle, _cfg(color_folder, image_size=32), 0, "")
    assert small.image_size == 32 and small.own_size == 44
    assert (small.sizes, small.fingerprint, small.class_counts) == (
        bundle.sizes, bundle.fingerprint, bundle.class_counts)
    images, labels = next(iter(small.validation))
    _, same_labels = next(iter(bundle.validation))
    assert images.shape[1:] == (32, 32, 3)
    np.testing.assert_array_equal(labels, same_labels)
    assert data_lib.at_image_size(bundle, _cfg(color_folder, image_size=224), 0, "").validation \
        is bundle.validation   # the same size: only the training split is reshaped


def test_the_own_size_of_a_tfds_dataset_is_its_declared_shape(fashion_mnist_dir):
    bundle = data_lib.load_data(_cfg("fashion_mnist", data_dir=fashion_mnist_dir, image_size=0,
                                     train_split="train[:64]", test_split="test[:16]",
                                     cache="none"), 0, "")
    assert bundle.own_size == 28
