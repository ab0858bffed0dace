"""Every kind of bad command line, and the one line `python -m tftransfer.run` answers with.

Each case runs the CLI as a subprocess and expects exit status 2 and exactly the line given.
Errors found while checking the flags come before TensorFlow starts, so stderr holds that
line alone. Data, backbone and training errors come after TensorFlow's start-up messages;
their line is the only `error:` line and the last one. When a message changes on purpose,
change it here: this table is what users see.
"""
import concurrent.futures
import json
import os
import socket
import subprocess
import sys

import pytest
import tensorflow as tf
from conftest import REPO, write_color_folder

from tftransfer.search.space import OVERRIDABLE

pytestmark = pytest.mark.e2e

BASE = ["--dataset=mnist", "--hub_handle={hub}", "--output_dir={out}"]
IMAGES = ["--dataset={colors}", "--hub_handle={hub}", "--output_dir={out}", "--image_size=24"]

# (case, arguments, the line); {name} is filled from the `paths` fixture.
BEFORE_TENSORFLOW = [
    ("missing flagfile", ["--flagfile={tmp}/missing.flags"],
     "error: Unable to open flagfile: [Errno 2] No such file or directory: "
     "'{tmp}/missing.flags'"),
    ("no dataset", ["--hub_handle={hub}", "--output_dir={out}"],
     "error: --dataset: is required (a TFDS name or a folder)"),
    ("missing folder", ["--dataset={tmp}/no/such/folder", "--hub_handle={hub}",
                        "--output_dir={out}"],
     "error: --dataset: folder not found: {tmp}/no/such/folder"),
    ("no hub handle", ["--dataset=mnist", "--output_dir={out}"],
     "error: --hub_handle: is required (or --backbone=NAME)"),
    ("unknown backbone", ["--dataset=mnist", "--backbone=resnet51", "--output_dir={out}"],
     "error: --backbone: unknown backbone 'resnet51'; choose from efficientnet_lite0, "
     "efficientnetv2_b0, efficientnetv2_b3, efficientnetv2_s, efficientnetv2_s_21k, "
     "mobilenet_v2, mobilenet_v3_large, mobilenet_v3_small, resnet50_v2, bit_m_r50x1, "
     "or keras:NAME for keras.applications.NAME, or keras_hub:PRESET"),
    ("hub handle that does not exist", ["--dataset=mnist", "--hub_handle={tmp}/no_module",
                                        "--output_dir={out}"],
     "error: --hub_handle: no SavedModel (saved_model.pb) in {tmp}/no_module"),
    ("no output dir", ["--dataset=mnist", "--hub_handle={hub}"],
     "error: --output_dir: is required"),
    ("output dir not writable", ["--dataset=mnist", "--hub_handle={hub}",
                                 "--output_dir={tmp}/a_file/out"],
     "error: --output_dir: cannot write to {tmp}/a_file/out: Not a directory"),
    ("batch size", [*BASE, "--batch_size=0"], "error: --batch_size: must be >= 1"),
    ("image size", [*BASE, "--image_size=4"],
     "error: --image_size: must be 0 (auto) or between 8 and 4096"),
    ("head epochs", [*BASE, "--epochs=2", "--head_epochs=3"],
     "error: --head_epochs: must be in [0, --epochs]"),
    ("fine-tune depth", [*BASE, "--fine_tune_depth=-2"],
     "error: --fine_tune_depth: must be -1 (all), 0 or a block count"),
    ("fractions", [*BASE, "--validation_fraction=0.6", "--test_fraction=0.5"],
     "error: --test_fraction: validation_fraction + test_fraction must be < 1"),
    ("unknown optimizer", [*BASE, "--optimizer=lion"],
     "error: flag --optimizer=lion: value should be one of <sgd|adam|adamw|adagrad>"),
    ("not an integer", [*BASE, "--epochs=abc"],
     "error: flag --epochs=abc: invalid literal for int() with base 10: 'abc'"),
    ("not a list of integers", [*BASE, "--head_units=a,b"],
     "error: --head_units: expected a comma-separated list of ints, got ['a', 'b']"),
    ("unknown augmentation", [*BASE, "--augmentations=flip,mixin"],
     "error: --augmentations: unknown ['mixin']; choose from flip, crop, rotation, zoom, "
     "contrast, brightness, erase, randaugment, mixup, cutmix"),
    ("unknown tta", [*BASE, "--tta=five_crop"],
     "error: flag --tta=five_crop: value should be one of <none|flip>"),
    ("bad regex", [*BASE, "--block_pattern=(unclosed"],
     "error: --block_pattern: invalid regex: missing ), unterminated subpattern at position 0"),
    ("search space not JSON", [*BASE, "--search=random", "--search_space={tmp}/bad.json"],
     "error: --search_space: cannot read {tmp}/bad.json: Expecting value: line 1 column 1 "
     "(char 0)"),
    ("search space unknown name", [*BASE, "--search=random",
                                   "--search_space={tmp}/unknown.json"],
     "error: --search_space: unknown hyperparameter(s) ['width']; searchable: "
     + ", ".join(OVERRIDABLE)),
    ("unknown flag in a flagfile", ["--flagfile={tmp}/unknown.flags"],
     "error: Unknown command line flag 'no_such_flag'"),
    ("stray argument", [*BASE, "extra"],
     "error: unexpected arguments ['extra']: flags take the form --name=value"),
]

AFTER_TENSORFLOW = [
    ("empty class folder", ["--dataset={empty_class}", "--hub_handle={hub}",
                            "--output_dir={out}"],
     "error: class folder(s) without usable training images: ['empty']"),
    ("a single class", ["--dataset={one_class}", "--hub_handle={hub}", "--output_dir={out}"],
     "error: need at least 2 class folders, found 1: ['only']"),
    ("not a feature vector", ["--dataset={colors}", "--hub_handle={feature_maps}",
                              "--output_dir={out}", "--image_size=24"],
     "error: --hub_handle: '{feature_maps}' returns (1, 24, 24, 3), not a feature vector "
     "[batch, features]; use a feature-vector model"),
    ("image size the module refuses", ["--dataset={colors}", "--hub_handle={fixed_size}",
                                       "--output_dir={out}", "--image_size=24"],
     "error: --image_size: the module rejects 24x24 RGB input; it takes images of shape "
     "(None, 32, 32, 3)"),
    ("unreachable hub URL", ["--dataset={colors}", "--hub_handle={url}", "--output_dir={out}",
                             "--image_size=24"],
     "error: --hub_handle: cannot load '{url}': <urlopen error [Errno 111] Connection refused>"),
    ("fine-tune deeper than the module", [*IMAGES, "--fine_tune_depth=7"],
     "error: --fine_tune_depth: fine_tune_depth=7 but the backbone has only 3 blocks "
     "(-1 trains all); adjust --block_pattern if that is wrong"),
    ("diverging loss", [*IMAGES, "--epochs=1", "--l2=1e38"],
     "error: training diverged in phase 'head' (loss inf); lower --learning_rate (peak was "
     "0.001) or --l2"),
]


class _FeatureMaps(tf.__internal__.tracking.AutoTrackable):
    """A reusable SavedModel whose output is an image, not a feature vector."""

    def __init__(self):
        self.scale = tf.Variable(2.0, name="stem/scale")
        self.variables = self.trainable_variables = [self.scale]

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3]), tf.TensorSpec([], tf.bool)])
    def __call__(self, images, training=False):
        return images * self.scale


class _FixedSize(tf.__internal__.tracking.AutoTrackable):
    """A feature vector saved for 32x32 images only."""

    def __init__(self):
        self.kernel = tf.Variable(tf.ones([32 * 32 * 3, 4]), name="blocks_0/kernel")
        self.variables = self.trainable_variables = [self.kernel]

    @tf.function(input_signature=[tf.TensorSpec([None, 32, 32, 3]), tf.TensorSpec([], tf.bool)])
    def __call__(self, images, training=False):
        return tf.matmul(tf.reshape(images, [-1, 32 * 32 * 3]), self.kernel)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def paths(tmp_path_factory, tiny_hub_dir, color_folder) -> dict[str, str]:
    tmp = tmp_path_factory.mktemp("cli")
    (tmp / "a_file").write_text("not a folder")
    (tmp / "bad.json").write_text("not json")
    (tmp / "unknown.json").write_text(json.dumps({"width": [1, 2]}))
    (tmp / "unknown.flags").write_text("--dataset=mnist\n--no_such_flag=3\n")
    empty_class = write_color_folder(tmp / "empty_class", per_class=4)
    os.makedirs(os.path.join(empty_class, "empty"))
    write_color_folder(tmp / "colors_for_one", per_class=4)
    os.makedirs(tmp / "one_class")
    os.rename(tmp / "colors_for_one" / "class_0", tmp / "one_class" / "only")
    tf.saved_model.save(_FeatureMaps(), str(tmp / "feature_maps"))
    tf.saved_model.save(_FixedSize(), str(tmp / "fixed_size"))
    return {"tmp": str(tmp), "hub": tiny_hub_dir,
            "colors": color_folder, "empty_class": empty_class,
            "one_class": str(tmp / "one_class"), "feature_maps": str(tmp / "feature_maps"),
            "fixed_size": str(tmp / "fixed_size"),
            "url": f"http://127.0.0.1:{_closed_port()}/no/such/module"}


def _run(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tftransfer.run", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=600)


def _output_dir(paths, case: str) -> str:
    return os.path.join(paths["tmp"], "out", case.replace(" ", "_"))


@pytest.fixture(scope="module")
def outcomes(paths) -> dict[str, subprocess.CompletedProcess]:
    """Every case, two at a time (each mostly waits for its own interpreter to start)."""
    cases = {name: [a.format(**paths, out=_output_dir(paths, name)) for a in args]
             for name, args, _ in BEFORE_TENSORFLOW + AFTER_TENSORFLOW}
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        futures = {name: pool.submit(_run, args) for name, args in cases.items()}
    return {name: future.result() for name, future in futures.items()}


@pytest.mark.parametrize("case, line", [(c, line) for c, _, line in BEFORE_TENSORFLOW])
def test_flag_errors_are_one_line_before_tensorflow_starts(outcomes, paths, case, line):
    result = outcomes[case]
    assert result.returncode == 2, result.stderr[-3000:]
    assert result.stderr.splitlines() == [line.format(**paths)]


@pytest.mark.parametrize("case, line", [(c, line) for c, _, line in AFTER_TENSORFLOW])
def test_data_backbone_and_training_errors_are_one_line(outcomes, paths, case, line):
    result = outcomes[case]
    assert result.returncode == 2, result.stderr[-3000:]
    lines = result.stderr.splitlines()
    assert [x for x in lines if x.startswith("error:")] == [line.format(**paths)] == lines[-1:]
    assert "Traceback" not in result.stderr
    assert not os.path.exists(os.path.join(_output_dir(paths, case), "backup"))


def test_export_onnx_without_tf2onnx_is_one_line_before_tensorflow(paths, tmp_path):
    """A machine without tf2onnx: sitecustomize marks it unimportable, as if absent."""
    (tmp_path / "sitecustomize.py").write_text("import sys\nsys.modules['tf2onnx'] = None\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(tmp_path), REPO] + [p for p in [os.environ.get("PYTHONPATH")] if p])}
    result = subprocess.run([sys.executable, "-m", "tftransfer.run",
                             *[a.format(**paths, out=tmp_path / "out") for a in IMAGES],
                             "--export_onnx"], cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "error: --export_onnx: needs the tf2onnx package (pip install tf2onnx)"]
