"""One way to load an export and call its signatures (export/signatures.py)."""
from __future__ import annotations

import re

import numpy as np
import tensorflow as tf

from tftransfer.config.errors import UserError
from tftransfer.export import signatures as signatures_lib
from tftransfer.export.layout import read_class_names, resolve_saved_model


def one_line(error: Exception) -> str:
    """A TensorFlow error's message without graph context (node names, traces, op names)."""
    text = getattr(error, "message", None) or str(error) or type(error).__name__
    kept = [line for line in text.splitlines() if line.strip() and not line[0].isspace()
            and not line.startswith(("Graph execution error", "Detected at node", "<stack"))]
    text = re.sub(r"\{\{[^}]*\}\}|\[Op:[^\]]*\]", "", " ".join(kept) or text)
    return " ".join(text.split())


class ServingClient:
    """An exported SavedModel (a version folder, or a base folder: its highest version),
    loaded once. Raises UserError, led by `flag` when given, if it cannot be used."""

    def __init__(self, model_dir: str, flag: str = ""):
        self.model_dir = resolve_saved_model(model_dir, flag=flag)
        try:
            self.loaded = tf.saved_model.load(self.model_dir)
        except Exception as e:  # a corrupt or incompatible SavedModel is the user's input
            raise UserError(f"cannot load the SavedModel in {self.model_dir}: "
                            f"{one_line(e)}") from None
        self.class_names = read_class_names(self.model_dir)

    def function(self, signature: signatures_lib.Signature):
        """The loaded concrete function of `signature`, checked against the table."""
        function = self.loaded.signatures.get(signature.name)
        if function is None or signature.input_name not in function.structured_input_signature[1]:
            raise UserError(f"the SavedModel in {self.model_dir} has no "
                            f"{signature.name}({signature.input_name}) signature")
        return function

    def call(self, signature: signatures_lib.Signature, inputs) -> dict[str, tf.Tensor]:
        return self.function(signature)(**{signature.input_name: inputs})

    def caller(self, signature: signatures_lib.Signature):
        """`signature` as a one-argument callable, e.g. to time it."""
        function = self.function(signature)
        return lambda inputs: function(**{signature.input_name: inputs})

    def is_multi_label(self) -> bool:
        """A --labels_csv export: its signatures return thresholded labels, not classes."""
        outputs = self.function(signatures_lib.BYTES).structured_outputs
        return signatures_lib.ABOVE_THRESHOLD in outputs

    def probabilities(self, signature: signatures_lib.Signature, inputs) -> np.ndarray:
        return self.call(signature, inputs)[signatures_lib.PROBABILITIES].numpy()
