"""The serving contract, in one table: every signature an export has, its input and its
outputs. Export builds the signatures from it; predict, evaluate, performance, warm-up and
the compression rows call them through it (export/client.py). No TensorFlow here, so the
CLIs can read it before TensorFlow starts.
"""
from __future__ import annotations

import dataclasses

PROBABILITIES = "probabilities"   # float32 [N, C]
CLASSES = "classes"               # string [N]: the labels.txt line of the most probable class
OUTPUTS = (PROBABILITIES, CLASSES)
# A multi-label export (--labels_csv) returns, instead of CLASSES, per-label probabilities
# and the labels at or above their threshold (baked into the export):
LABELS = "labels"                 # string [N, L]: those labels, most probable first, padded ""
ABOVE_THRESHOLD = "above_threshold"   # bool [N, L], in labels.txt order
MULTI_LABEL_OUTPUTS = (PROBABILITIES, LABELS, ABOVE_THRESHOLD)


@dataclasses.dataclass(frozen=True)
class Signature:
    name: str                     # the SavedModel signature key
    input_name: str
    dtype: str                    # a tf.DType name
    shape: tuple[int | None, ...]
    takes: str                    # what the input holds, for docs and errors


BYTES = Signature("serving_default", "images", "string", (None,),
                  "encoded JPEG/PNG/BMP/GIF images of any size")
PIXELS = Signature("serving_pixels", "pixels", "uint8", (None, None, None, 3),
                   "uint8 RGB pixels of any height and width")
SIGNATURES = (BYTES, PIXELS)
