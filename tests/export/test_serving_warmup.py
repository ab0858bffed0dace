import numpy as np
import pytest
import tensorflow as tf
from conftest import make_config

from tftransfer.data import pipeline as data_lib
from tftransfer.export import serving_warmup as warmup


def _pixels(split, count):
    images, _ = next(iter(split.unbatch().batch(count)))
    return np.round(images.numpy() * 255).astype(np.uint8)


@pytest.mark.parametrize("validation_fraction", [0.2, 0.0])
def test_images_are_the_validation_split_else_the_test_split(tmp_path, color_folder,
                                                             tiny_hub_dir, validation_fraction):
    cfg = make_config(tmp_path, dataset=color_folder, hub_handle=tiny_hub_dir,
                      validation_fraction=validation_fraction, test_fraction=0.2)
    data = data_lib.load_data(cfg.data, cfg.seed, str(tmp_path / "cache"))
    split = data.validation if validation_fraction else data.test
    assert (data.validation is None) == (not validation_fraction)
    images = warmup.validation_images(data, 5)
    assert len(images) == 5
    np.testing.assert_array_equal(np.stack([tf.io.decode_png(png).numpy() for png in images]),
                                  _pixels(split, 5))
    assert warmup.validation_images(data, 0) == []
    assert len(warmup.validation_images(data, 10_000)) == data.sizes[
        "validation" if validation_fraction else "test"]


def test_the_file_holds_one_serving_default_request_per_image(tmp_path):
    images = [tf.io.encode_png(tf.fill([4, 6, 3], tf.constant(v, tf.uint8))).numpy()
              for v in (0, 128, 255)]
    path = warmup.write_warmup_requests(str(tmp_path), images)
    assert path == str(tmp_path / "assets.extra" / "tf_serving_warmup_requests")
    from tensorflow_serving.apis import prediction_log_pb2
    requests = [prediction_log_pb2.PredictionLog.FromString(r.numpy()).predict_log.request
                for r in tf.data.TFRecordDataset(path)]
    assert [r.model_spec.signature_name for r in requests] == ["serving_default"] * 3
    assert [list(tf.make_ndarray(r.inputs["images"])) for r in requests] == [[i] for i in images]


def test_more_requests_than_tf_serving_accepts_are_refused(tmp_path):
    with pytest.raises(ValueError, match="more than 1000"):
        warmup.write_warmup_requests(str(tmp_path), [b"x"] * 1001)
