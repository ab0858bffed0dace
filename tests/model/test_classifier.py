import keras
import numpy as np
import pytest

from tftransfer.config.run_config import HeadConfig, TrainConfig
from tftransfer.model import classifier as model_lib


def test_head_shapes_and_float32_probabilities_under_mixed_precision():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        head = model_lib.build_head(16, 5, HeadConfig(head_units=(8, 4), dropout=0.1, l2=1e-4))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    out = head(np.ones((3, 16), np.float32))
    assert out.shape == (3, 5) and str(out.dtype) == "<dtype: 'float32'>"
    np.testing.assert_allclose(np.asarray(out).sum(axis=1), 1.0, rtol=1e-5)
    assert [l.name for l in head.layers if isinstance(l, keras.layers.Dense)] == [
        "head_dense_0", "head_dense_1", "head_logits"]
    assert len(head.losses) == 3  # one L2 penalty per kernel


def test_label_smoothing_matches_the_formula():
    probs = np.array([[0.7, 0.2, 0.1]], np.float32)
    loss = model_lib.SmoothedSparseCrossentropy(3, 0.3)(np.array([0]), probs)
    target = np.array([0.7 + 0.1, 0.1, 0.1])
    np.testing.assert_allclose(float(loss), -(target * np.log(probs[0])).sum(), rtol=1e-5)


def test_cosine_schedule_warms_up_then_decays():
    schedule = model_lib.learning_rate_schedule(0.1, total_steps=100, warmup_steps=10)
    values = [float(schedule(step)) for step in (0, 5, 10, 55, 100)]
    assert values[0] == pytest.approx(0.0) and values[1] == pytest.approx(0.05)
    assert values[2] == pytest.approx(0.1) and values[3] == pytest.approx(0.05, rel=1e-3)
    assert values[4] == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("name, cls", [("sgd", keras.optimizers.SGD),
                                       ("adam", keras.optimizers.Adam),
                                       ("adamw", keras.optimizers.AdamW),
                                       ("adagrad", keras.optimizers.Adagrad)])
def test_optimizers(name, cls):
    optimizer = model_lib.make_optimizer(TrainConfig(optimizer=name), 0.01)
    assert isinstance(optimizer, cls)
