import math

import numpy as np
import pytest
from conftest import make_config

from tftransfer.data import pipeline as data_lib
from tftransfer.model import classifier as model_lib
from tftransfer.train import lr_range


def test_smoothing_is_bias_corrected():
    assert lr_range.smooth([2.0, 2.0, 2.0]) == pytest.approx([2.0, 2.0, 2.0])
    rising = lr_range.smooth([1.0, 2.0, 3.0], factor=0.5)
    assert rising[0] == 1.0 and rising[0] < rising[1] < rising[2] < 3.0


def test_the_suggestion_is_where_the_loss_falls_fastest_before_its_minimum():
    rates = lr_range.rates(60)
    logs = np.log10(rates)
    # A loss that falls steepest at 1e-3 and bottoms out at 1e-1, then climbs.
    losses = 2.0 - np.tanh(2 * (logs + 3)) + np.where(logs > -1, 5 * (logs + 1) ** 2, 0.0)
    suggestion = lr_range.suggest(rates, losses)
    assert 10 ** -3.2 < suggestion < 10 ** -2.8
    assert lr_range.suggest([1e-3, 1e-2, 1e-1], [1.0, 2.0, 3.0]) == pytest.approx(1e-4)


def test_the_range_test_stops_at_divergence_and_puts_the_weights_back(tmp_path,
                                                                        tiny_hub_dir,
                                                                        color_folder):
    cfg = make_config(tmp_path, dataset=color_folder, hub_handle=tiny_hub_dir)
    data = data_lib.load_data(cfg.data, cfg.seed, "")
    classifier = model_lib.build_model(cfg, data.num_classes)
    before = [w.numpy().copy() for w in classifier.weights]
    found = lr_range.run_range_test(classifier, classifier.backbone, data.train,
                                    data.num_classes, cfg, steps=60)
    assert 3 <= len(found.rates) <= 60 and list(found.rates) == sorted(found.rates)
    assert all(math.isfinite(v) for v in found.losses)
    assert found.rates[0] <= found.suggestion <= found.rates[-1]
    assert found.to_dict()["suggested_learning_rate"] == found.suggestion
    for saved, now in zip(before, classifier.weights):
        np.testing.assert_array_equal(saved, now.numpy())


def test_the_rate_stops_growing_once_the_smoothed_loss_diverges():
    import keras
    growing = lr_range._GrowingRate(lr_range.rates(20))
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    growing.set_model(model)
    for epoch, loss in enumerate([1.0, 0.8, 0.6, 0.5, 0.5, 3.0, 9.0, 40.0]):
        growing.on_epoch_begin(epoch)
        growing.on_epoch_end(epoch, {"loss": loss})
        if model.stop_training:
            break
    # Smoothed, the first jump (3.0) is not yet 4x the minimum; the climb after it is.
    assert epoch == 6 and float(model.optimizer.learning_rate) == pytest.approx(
        lr_range.rates(20)[6])
