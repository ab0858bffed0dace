import io

import numpy as np
from PIL import Image

from tftransfer.evaluate import metrics as classification_metrics
from tftransfer.report import plots


def _image(png: bytes) -> Image.Image:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    return Image.open(io.BytesIO(png))


def test_learning_curves_span_all_phases():
    phases = [{"name": "head", "epochs": 2,
               "history": {"loss": [1.0, 0.8], "val_loss": [1.1, 0.9],
                           "accuracy": [0.5, 0.6], "val_accuracy": [0.4, 0.5]}},
              {"name": "fine_tune", "epochs": 1,
               "history": {"loss": [0.5], "val_loss": [0.7],
                           "accuracy": [0.8], "val_accuracy": [0.7]}}]
    width, height = _image(plots.learning_curves(phases)).size
    assert width > 2 * height > 200


def test_confusion_matrix_grows_with_the_class_count():
    small = _image(plots.confusion_matrix([[3, 1], [0, 4]], ["a", "b"])).size
    large = _image(plots.confusion_matrix(np.eye(30, dtype=int), [f"c{i}" for i in range(30)]))
    assert large.size[0] > small[0] and large.size[1] > small[1]


def test_image_grid_accepts_float_and_uint8_images():
    floats = np.random.default_rng(0).random((10, 8, 8, 3), dtype=np.float32)
    grid = _image(plots.image_grid(floats, [f"label {i}" for i in range(10)], columns=4))
    assert grid.size[0] > grid.size[1]  # 4 columns, 3 rows
    assert _image(plots.image_grid((floats * 255).astype(np.uint8), ["x"] * 10)).size[0] > 0


def test_reliability_diagram_draws_before_and_after_with_empty_bins():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 200)
    confident = rng.dirichlet(np.ones(4) * 0.1, 200)
    before = classification_metrics.reliability_bins(labels, confident)
    after = classification_metrics.reliability_bins(labels, np.full((200, 4), 0.25))
    assert after["count"].count(0) == after["num_bins"] - 1  # every row in one bin
    width, height = _image(plots.reliability_diagram(before, after)).size
    assert height > width > 300


def test_roc_curves_plot_the_macro_average_and_capped_classes():
    rng = np.random.default_rng(0)
    names = [f"class {k}" for k in range(30)]
    labels = np.arange(300) % 30
    probabilities = rng.dirichlet(np.ones(30), 300)
    curves = classification_metrics.roc_curves(labels, probabilities, names)
    assert len(curves["classes"]) == classification_metrics.MAX_ROC_CLASSES
    width, height = _image(plots.roc_curves(curves)).size
    assert width > 300 and height > 300
    single = classification_metrics.roc_curves([0, 1], [[0.8, 0.2], [0.4, 0.6]], ["a", "b"])
    assert _image(plots.roc_curves(single)).size[0] > 0
