import io

import numpy as np
from PIL import Image

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
