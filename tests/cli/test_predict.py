"""The predict CLI on real images (the samples shipped in the foolbox wheel, never imported)
through a small real SavedModel with the exported `serving_default(images)` contract."""
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from conftest import REPO
from PIL import Image

from tftransfer.cli import predict
from tftransfer.config.errors import UserError

NAMES = ["reddish", "greenish", "bluish"]
SAMPLES = ["cifar10_00_3.png", "imagenet_03_990.jpg", "mnist_00_7.png",
           "fashionMNIST_00_9.png", "imagenet_00_243.jpg"]


class MeanColourModel(tf.Module):
    """Mean colour of the 8x8-resized image -> softmax over 3 classes with fixed weights.
    Images less than 2 pixels high decode but are rejected by the graph. Like the real
    export, the class names are the asset labels.txt."""

    def __init__(self, labels_path):
        super().__init__()
        self.labels = tf.saved_model.Asset(labels_path)
        self.w = tf.Variable([[6., -3., -3.], [-3., 6., -3.], [-3., -3., 6.]], trainable=False)
        self.b = tf.Variable([0., 0., 0.1], trainable=False)  # grey -> bluish

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="images")])
    def serve(self, images):
        def mean_colour(encoded):
            image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
            image.set_shape([None, None, 3])
            check = tf.debugging.assert_greater_equal(tf.shape(image)[0], 2,
                                                      message="image too small")
            with tf.control_dependencies([check]):
                small = tf.image.resize(tf.cast(image, tf.float32) / 255.0, [8, 8])
            return tf.reduce_mean(small, axis=[0, 1])

        means = tf.map_fn(mean_colour, images, fn_output_signature=tf.TensorSpec([3], tf.float32))
        probabilities = tf.nn.softmax(tf.matmul(means, self.w) + self.b)
        return {"probabilities": probabilities,
                "classes": tf.gather(tf.constant(NAMES), tf.argmax(probabilities, axis=-1))}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> str:
    """The base folder (<output_dir>/saved_model) holding version 1, as a run exports it."""
    root = tmp_path_factory.mktemp("predict")
    (root / "labels.txt").write_text("".join(f"{name}\n" for name in NAMES))
    module = MeanColourModel(str(root / "labels.txt"))
    tf.saved_model.save(module, str(root / "saved_model" / "1"),
                        signatures={"serving_default": module.serve})
    return str(root / "saved_model")


@pytest.fixture(scope="module")
def samples() -> list[str]:
    data = importlib.metadata.distribution("foolbox").locate_file("foolbox/data")
    return [str(data / name) for name in SAMPLES]


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "tftransfer.predict", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.e2e
def test_json_output_is_well_formed_and_agrees_with_the_signature(model_dir, samples):
    proc = _cli(f"--model_dir={model_dir}", "--format=json", "--top_k=2", "--batch_size=2",
                *samples)
    assert proc.returncode == 0, proc.stderr
    results = json.loads(proc.stdout)
    assert [r["path"] for r in results] == samples

    version_dir = predict.check_model_dir(model_dir)
    assert version_dir == os.path.join(model_dir, "1")
    served = tf.saved_model.load(version_dir).signatures["serving_default"](
        images=tf.constant([open(f, "rb").read() for f in samples]))
    probabilities = served["probabilities"].numpy()
    for result, expected, top_class in zip(results, probabilities, served["classes"].numpy()):
        predictions = result["predictions"]
        probs = [p["probability"] for p in predictions]
        assert len(predictions) == 2 and probs == sorted(probs, reverse=True)
        assert sum(probs) <= 1 + 1e-6
        assert {p["class"] for p in predictions} <= set(NAMES)
        assert predictions[0]["class"] == top_class.decode()
        np.testing.assert_allclose(probs, [expected[NAMES.index(p["class"])]
                                           for p in predictions], atol=1e-6)
    assert [r["predictions"][0]["class"] for r in results] == [  # by mean colour
        "greenish", "greenish", "bluish", "bluish", "reddish"]


def test_top_k_is_capped_at_the_number_of_classes(model_dir, samples):
    (result,) = predict.predict_files(model_dir, samples[:1], top_k=5)
    probs = [p["probability"] for p in result["predictions"]]
    assert sorted(p["class"] for p in result["predictions"]) == sorted(NAMES)
    assert abs(sum(probs) - 1) < 1e-5


def _mixed_folder(root, samples) -> None:
    """Real images in nested folders, in every supported format, plus files to skip."""
    files = {"a/cat.png": samples[0], "a/deep/er/plane.jpg": samples[1],
             "b/digit.png": samples[2], "SHOUT.JPG": samples[4]}
    for rel, src in files.items():
        os.makedirs(os.path.dirname(os.path.join(root, rel)), exist_ok=True)
        shutil.copy(src, os.path.join(root, rel))
    Image.open(samples[0]).save(os.path.join(root, "a", "cat.bmp"))
    Image.open(samples[3]).save(os.path.join(root, "b", "shirt.gif"))
    Image.open(samples[1]).save(os.path.join(root, "b", "photo.jpeg"))
    Image.open(samples[0]).crop((0, 0, 32, 1)).save(os.path.join(root, "b", "sliver.png"))
    with open(os.path.join(root, "a", "corrupt.jpg"), "w") as f:
        f.write("this is not a JPEG\n")
    data = open(samples[1], "rb").read()
    with open(os.path.join(root, "b", "truncated.jpg"), "wb") as f:
        f.write(data[:len(data) // 2])
    open(os.path.join(root, "notes.txt"), "w").close()
    os.makedirs(os.path.join(root, ".hidden"))
    shutil.copy(samples[0], os.path.join(root, ".hidden", "x.png"))
    shutil.copy(samples[0], os.path.join(root, "a", ".x.png"))


def test_folders_are_searched_recursively_and_bad_files_are_skipped(model_dir, samples,
                                                                   tmp_path):
    root = str(tmp_path / "images")
    _mixed_folder(root, samples)
    found = predict.find_images([root, samples[3]])
    expected = ["SHOUT.JPG", "a/cat.bmp", "a/cat.png", "a/corrupt.jpg", "a/deep/er/plane.jpg",
                "b/digit.png", "b/photo.jpeg", "b/shirt.gif", "b/sliver.png", "b/truncated.jpg"]
    assert found == [os.path.join(root, *rel.split("/")) for rel in expected] + [samples[3]]

    results = predict.predict_files(model_dir, found, top_k=1, batch_size=4)
    assert [r["path"] for r in results] == found
    errors = {os.path.relpath(r["path"], root): r["error"] for r in results if "error" in r}
    assert sorted(errors) == ["a/corrupt.jpg", "b/sliver.png", "b/truncated.jpg"]
    assert "Unknown image file format" in errors["a/corrupt.jpg"]
    assert errors["b/sliver.png"].startswith(  # decodes, but the graph rejects it
        "the model rejected it: assertion failed: [image too small]")
    assert all("\n" not in e and "{{" not in e for e in errors.values())
    good = [r for r in results if "predictions" in r]
    assert len(good) == 8 and all(len(r["predictions"]) == 1 for r in good)

    table = predict.format_table(results)
    assert f"{os.path.join(root, 'a', 'corrupt.jpg')}: skipped (cannot decode image" in table
    assert table.count("skipped") == 3 and table.count("\n") == 3 + 8 * 2


@pytest.mark.e2e
def test_table_output_from_the_cli(model_dir, samples, tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_text("not an image")
    proc = _cli(f"--model_dir={model_dir}", "--top_k=3", samples[0], str(bad), samples[1])
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == samples[0] and lines[4].startswith(f"{bad}: skipped")
    assert lines[5] == samples[1] and len(lines) == 9
    assert all(line.startswith("  ") and line.split()[0] in NAMES
               for line in lines[1:4] + lines[6:9])


@pytest.mark.e2e
@pytest.mark.parametrize("case", ["missing_model", "not_a_saved_model", "no_images",
                                  "no_paths", "missing_path", "bad_flag"])
def test_user_errors_are_one_line_with_exit_status_2(case, model_dir, tmp_path):
    empty = tmp_path / "empty"
    (empty / "sub").mkdir(parents=True)
    (empty / "sub" / "readme.txt").write_text("no images here")
    args, message = {
        "missing_model": ([f"--model_dir={tmp_path / 'nope'}", str(empty)], "not a SavedModel"),
        "not_a_saved_model": ([f"--model_dir={empty}", str(empty)], "not a SavedModel"),
        "no_images": ([f"--model_dir={model_dir}", str(empty)], "no images"),
        "no_paths": ([f"--model_dir={model_dir}"], "no image files or folders given"),
        "missing_path": ([f"--model_dir={model_dir}", str(tmp_path / "x.jpg")], "no such file"),
        "bad_flag": ([f"--model_dir={model_dir}", "--top_k=0", str(empty)], "--top_k"),
    }[case]
    proc = _cli(*args)
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert message in lines[0]


def test_library_errors_are_user_errors(model_dir, tmp_path):
    with pytest.raises(UserError, match="no image files"):
        predict.find_images([])
    with pytest.raises(UserError, match="did you mean"):
        predict.check_model_dir(os.path.dirname(model_dir))  # the run's output_dir
    with pytest.raises(UserError, match="top_k"):
        predict.predict_files(model_dir, [], top_k=0)
