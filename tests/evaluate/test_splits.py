import dataclasses

import keras
import numpy as np
import pytest
from conftest import make_config

from tftransfer.config.errors import DataError
from tftransfer.data import pipeline as data_lib
from tftransfer.evaluate import splits, temperature as temperature_fit
from tftransfer.model import classifier as model_lib, temperature_layer as temperature


@pytest.fixture(scope="module")
def over_confident(tmp_path_factory, tiny_hub_dir, color_folder):
    """An untrained tiny classifier made over-confident (large logits), and its data."""
    root = tmp_path_factory.mktemp("splits")
    cfg = make_config(root, dataset=color_folder, hub_handle=tiny_hub_dir,
                      validation_fraction=0.3, test_fraction=0.3)
    data = data_lib.load_data(cfg.data, cfg.seed, str(root / "cache"))
    # Seeded: the head's draw must not depend on which tests ran before in the process.
    keras.utils.set_random_seed(cfg.seed)
    classifier = model_lib.build_model(cfg, data.num_classes)
    logits = classifier.head.get_layer(model_lib.LOGITS)
    # Over-confident, yet not so saturated that float32 probabilities lose the logits.
    logits.kernel.assign(logits.kernel.numpy() * 20.0)
    return classifier, data


def test_calibrate_fits_on_validation_and_evaluates_the_scaled_model(over_confident):
    classifier, data = over_confident
    scores, predictions = splits.evaluate_splits(classifier, data)
    calibrated, after, after_predictions, block = splits.calibrate(classifier, data, scores,
                                                                   predictions)
    fitted = block["temperature"]
    assert fitted == pytest.approx(temperature_fit.fit_temperature(*predictions["validation"]))
    assert fitted > 1.5  # over-confident: softened
    assert temperature.temperature_of(calibrated) == pytest.approx(fitted)
    for split in ("validation", "test"):
        labels, probabilities = after_predictions[split]
        np.testing.assert_array_equal(labels, predictions[split][0])
        np.testing.assert_allclose(
            probabilities, temperature_fit.apply_temperature(predictions[split][1], fitted),
            atol=1e-5)
        row = block[split]
        assert row["accuracy_after"] == row["accuracy_before"] == after[split]["accuracy"]
        assert row["ece_before"] == scores[split]["expected_calibration_error"]
        assert row["ece_after"] == after[split]["expected_calibration_error"]
        assert row["nll_after"] == after[split]["loss"]
    assert block["validation"]["nll_after"] <= block["validation"]["nll_before"]
    reliability = block["reliability"]
    assert reliability["split"] == "test"
    assert sum(reliability["before"]["count"]) == len(predictions["test"][0])
    assert reliability["after"]["expected_calibration_error"] == pytest.approx(
        block["test"]["ece_after"])


def test_calibrate_needs_a_validation_split(over_confident):
    classifier, data = over_confident
    no_validation = dataclasses.replace(data, validation=None)
    scores, predictions = splits.evaluate_splits(classifier, no_validation)
    with pytest.raises(DataError, match="^--calibrate: the data has no validation split"):
        splits.calibrate(classifier, no_validation, scores, predictions)


def _colour_model(image_size: int, num_classes: int, flip_invariant: bool):
    """A random model that is mirror-invariant (it sees only mean colours) or not (a dense
    layer on every pixel)."""
    keras.utils.set_random_seed(3)
    images = keras.Input((image_size, image_size, 3))
    pooled = (keras.layers.GlobalAveragePooling2D() if flip_invariant
              else keras.layers.Flatten())(images)
    logits = keras.layers.Dense(num_classes)(pooled)
    return keras.Model(images, keras.layers.Softmax()(keras.layers.Rescaling(30.0)(logits)))


@pytest.mark.parametrize("flip_invariant", [False, True])
def test_flip_tta_changes_only_what_a_mirror_changes(over_confident, flip_invariant):
    _, data = over_confident
    image_size = next(iter(data.test))[0].shape[1]
    model = _colour_model(image_size, data.num_classes, flip_invariant)
    plain, plain_predictions = splits.evaluate_splits(model, data)
    flipped, flipped_predictions = splits.evaluate_splits(model, data, "flip")
    for split in ("validation", "test"):
        difference = np.abs(plain_predictions[split][1] - flipped_predictions[split][1]).max()
        assert (difference < 1e-5) if flip_invariant else (difference > 1e-3)
    block = splits.tta_block(model, data, "flip", flipped)
    assert block["mode"] == "flip"
    for split in ("validation", "test"):
        assert block[split]["accuracy"] == flipped[split]["accuracy"]
        assert block[split]["accuracy_without_tta"] == plain[split]["accuracy"]
        assert block[split]["loss_without_tta"] == pytest.approx(plain[split]["loss"])
        if flip_invariant:
            assert block[split]["loss"] == pytest.approx(plain[split]["loss"], abs=1e-5)
        else:
            assert block[split]["loss"] != pytest.approx(plain[split]["loss"], abs=1e-5)


def test_calibration_with_flip_tta_fits_on_the_averaged_predictions(over_confident):
    classifier, data = over_confident
    scores, predictions = splits.evaluate_splits(classifier, data, "flip")
    calibrated, after, after_predictions, block = splits.calibrate(classifier, data, scores,
                                                                   predictions, "flip")
    assert block["temperature"] == pytest.approx(
        temperature_fit.fit_temperature(*predictions["validation"]))
    _, expected = splits.evaluate_splits(calibrated, data, "flip")
    for split in ("validation", "test"):
        np.testing.assert_allclose(after_predictions[split][1], expected[split][1], atol=1e-6)
    assert after["validation"]["loss"] < scores["validation"]["loss"]
