"""A tiny TFDS dataset with a multi-label (Sequence(ClassLabel)) supervised label, for tests.
Its name is `tiny_multi_label`; prepare it with TinyMultiLabel(data_dir=D).download_and_prepare()."""
import numpy as np
import tensorflow_datasets as tfds

NAMES = ["cat", "dog", "fox"]


class TinyMultiLabel(tfds.core.GeneratorBasedBuilder):
    """Images with a sequence of class labels, as supervised (image, labels) pairs."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self,
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(8, 8, 3)),
                "labels": tfds.features.Sequence(tfds.features.ClassLabel(names=NAMES))}),
            supervised_keys=("image", "labels"))

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples(12), "test": self._generate_examples(4)}

    def _generate_examples(self, count):
        label_sets = ([0], [1, 2], [], [2, 0, 2])
        for i in range(count):
            yield i, {"image": np.full((8, 8, 3), 10 * i, np.uint8),
                      "labels": label_sets[i % 4]}
