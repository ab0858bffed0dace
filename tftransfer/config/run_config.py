"""The run configuration: one typed, frozen object, the single source of defaults.

Flags are generated from these dataclasses (see `flags.py`), so a default lives in exactly
one place. `validate()` checks every value before TensorFlow is imported; a bad value raises
`ConfigError` naming the flag. This module must not import TensorFlow.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any

from tftransfer.config import catalogue
from tftransfer.config.errors import UserError

DEFAULT_BLOCK_PATTERN = (
    r"(?:^|/)(block\d+/unit_?\d+|blocks?_?\d+[a-z]?|stage_?\d+|expanded_conv_\d+"
    r"|layer_?\d+|cell_\d+)(?:/|_|$)"
)
OPTIMIZERS = ("sgd", "adam", "adamw", "adagrad")
STRATEGIES = ("auto", "mirrored", "one_device", "multi_worker", "tpu")
CACHE_MODES = ("auto", "memory", "disk", "none")
SEARCHES = ("auto", "none", "hyperband", "bayesian", "random")
CLASS_WEIGHTS = ("none", "balanced")
BUDGET_SEARCH = "random"   # what --search=auto runs within a --time_budget (BUILD.md: why)
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
AUGMENTATIONS = ("flip", "crop", "rotation", "zoom", "contrast", "brightness", "erase",
                 "randaugment", "mixup", "cutmix")
TFLITE_MODES = ("float", "dynamic", "float16", "int8")
ADVERSARIAL_ATTACKS = ("none", "fgsm", "pgd")
ENSEMBLE_MEMBERS = ("restore", "retrain")
TTA_MODES = ("none", "flip")
FIND_LEARNING_RATE = "find"  # --learning_rate=find
NATIVE_IMAGE_SIZE = 224     # what --image_size=0 trains at without a search
MAX_WARMUP_REQUESTS = 1000   # TF Serving refuses a version whose warm-up file holds more
ONNX_PACKAGES = ("tf2onnx", "onnxruntime")   # what --export_onnx imports


class ConfigError(UserError):
    """A configuration value is invalid; `flag` names the offending flag."""

    def __init__(self, flag: str, message: str):
        super().__init__(f"--{flag}: {message}")
        self.flag = flag


def field(default: Any, help: str, choices: tuple[str, ...] | None = None,
          words: tuple[str, ...] = (), **kw):
    """`words`: besides a number, a numeric flag also takes these."""
    metadata = {"help": help, "choices": choices, "words": words}
    if isinstance(default, (list, tuple)):
        return dataclasses.field(default=tuple(default), metadata=metadata, **kw)
    return dataclasses.field(default=default, metadata=metadata, **kw)


@dataclasses.dataclass(frozen=True)
class DataConfig:
    dataset: str = field("", "TFDS name (e.g. cifar10) or a folder of class sub-folders.")
    data_dir: str = field("", "TFDS data directory (default: TFDS's own).")
    train_split: str = field("train", "TFDS split for training, e.g. 'train[:90%]'.")
    validation_split: str = field(
        "", "TFDS split for validation; empty: hold out --validation_fraction of train.")
    test_split: str = field("test", "TFDS split for the final test; empty: none.")
    validation_fraction: float = field(0.1, "Held-out fraction when no validation split.")
    test_fraction: float = field(0.1, "Held-out test fraction for unsplit folders.")
    image_size: int = field(
        0, "Square input resolution fed to the backbone; 0: the backbone's native size "
           f"(--backbone's, else {NATIVE_IMAGE_SIZE}), and a search also tries sizes from the "
           "data's own upwards.")
    batch_size: int = field(32, "Global batch size (split across replicas).")
    augment: bool = field(True, "Augment training images.")
    augmentations: tuple[str, ...] = field(
        ("flip", "crop", "rotation", "contrast"),
        "Augmentations; flip, crop, rotation and zoom share one resampling; randaugment "
        "(Keras's RandAugment) and erase (random erasing) follow; mixup and cutmix mix "
        "pairs of a batch's images and labels last (both: one of them per batch).",
        choices=AUGMENTATIONS)
    cache: str = field("auto", "Cache decoded images: auto (memory if it fits), memory, "
                       "disk (under output_dir), none.", choices=CACHE_MODES)
    cache_limit_mb: int = field(2048, "Largest decoded split cached in memory by --cache=auto.")
    shuffle_buffer: int = field(10000, "Shuffle buffer size (examples).")
    labels_csv: str = field(
        "", "Multi-label: a CSV with header filename,labels (paths relative to the --dataset "
            "folder, labels separated by spaces); a sigmoid head with a threshold per label.")


@dataclasses.dataclass(frozen=True)
class BackboneConfig:
    backbone: str = field("", "A catalogued feature-vector model by name, which sets "
                              "--hub_handle and the defaults of --image_size and "
                              "--block_pattern: " + ", ".join(catalogue.CATALOGUE) +
                              ". With --hub_handle too, that handle is loaded (e.g. a local "
                              "copy) with the name's defaults.")
    hub_handle: str = field("", "TF-Hub/Kaggle handle, URL or local SavedModel directory "
                                "of a feature-vector model (or --backbone).")
    fine_tune_depth: int = field(0, "Top backbone blocks to fine-tune: 0 frozen, -1 all.")
    unfreeze_schedule: tuple[int, ...] = field(
        (), "Gradual unfreezing: fine-tune depths by stage, e.g. 2,6,-1; the fine-tune "
            "epochs are split between the stages shallower than --fine_tune_depth and "
            "--fine_tune_depth itself, the last stage. Empty: one stage.")
    block_pattern: str = field(DEFAULT_BLOCK_PATTERN,
                               "Regex whose first group names a variable's block.")
    bn_inference: bool = field(True, "Keep backbone BatchNorm in inference mode "
                                     "while fine-tuning.")


@dataclasses.dataclass(frozen=True)
class HeadConfig:
    head_units: tuple[int, ...] = field((), "Hidden dense layer widths, e.g. 512,256.")
    dropout: float = field(0.2, "Dropout rate before each head layer.")
    l2: float = field(0.0, "L2 weight penalty on head kernels.")
    label_smoothing: float = field(0.1, "Label smoothing of the cross-entropy loss.")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    epochs: int = field(5, "Total training epochs (head phase + fine-tune phase).")
    head_epochs: int = field(1, "Phase-1 epochs on the frozen backbone before fine-tuning.")
    optimizer: str = field("adam", "Optimizer.", choices=OPTIMIZERS)
    learning_rate: float | str = field(
        1e-3, "Peak learning rate of phase 1; find: the learning-rate range test's "
              "suggestion (python -m tftransfer.lr_find).", words=(FIND_LEARNING_RATE,))
    fine_tune_lr_factor: float = field(0.1, "Phase-2 learning rate = learning_rate * this.")
    layer_lr_decay: float = field(1.0, "While fine-tuning, each backbone block below the top "
                                       "learns at this times the rate of the one above; 1: "
                                       "one rate for all.")
    momentum: float = field(0.9, "Momentum for SGD.")
    weight_decay: float = field(1e-4, "Decoupled weight decay for AdamW.")
    warmup_epochs: float = field(0.0, "Linear warm-up length of each phase, in epochs.")
    ema: bool = field(False, "Keep an exponential moving average of the weights; it is "
                             "what validation, the best checkpoint, evaluation and the "
                             "export see.")
    ema_momentum: float = field(0.0, "The average's momentum; 0: one that averages over "
                                     "about the last 10 % of each phase's steps.")
    compare_scratch: bool = field(
        False, "After the run, also train its architecture from random initialisation "
               "(every block, BatchNorm adapting) for the same epochs, or within the final "
               "training's wall time under --time_budget: the `scratch` row of the "
               "comparison, and accuracy against wall time for both in the report.")
    class_weight: str = field("none", "Loss weight per class: none, or balanced (each "
                                      "class's examples weigh n / (classes x its count)).",
                              choices=CLASS_WEIGHTS)
    calibrate: bool = field(False, "After training, fit one softmax temperature on the "
                                   "validation split (minimising its NLL) and fold it into "
                                   "the model that is evaluated and exported.")
    tta: str = field("none", "Test-time augmentation of the evaluation: flip averages the "
                             "probabilities of each image and its mirror; metrics.json's "
                             "validation and test metrics are then those, and its tta block "
                             "holds the accuracy without.", choices=TTA_MODES)
    early_stopping_patience: int = field(3, "Epochs without validation improvement "
                                            "before stopping; 0 disables.")
    mixed_precision: bool = field(False, "mixed_float16 on GPU, mixed_bfloat16 elsewhere.")
    jit_compile: bool = field(False, "Compile train/predict steps with XLA.")
    deterministic: bool = field(False, "TensorFlow op determinism: bit-identical reruns on "
                                       "GPU too, at some speed (see BUILD.md).")
    profile_steps: int = field(0, "Profile this many training steps (from the second) into "
                                  "TensorBoard's profile plugin; 0 disables.")


@dataclasses.dataclass(frozen=True)
class SearchConfig:
    time_budget: str = field("", "Wall-clock budget of the whole run, e.g. 90s, 20m, 1.5h: "
                                 "the run measures its step times and plans search and "
                                 "training to end inside it. Empty: --epochs and --max_trials.")
    search: str = field("auto", "KerasTuner search before the final training; auto: a "
                                "random search when --time_budget is set, else none.",
                        choices=SEARCHES)
    max_trials: int = field(10, "Trials for bayesian/random search.")
    search_epochs: int = field(3, "Epochs per trial (Hyperband: its max_epochs).")
    search_fraction: float = field(1.0, "Seeded fraction of the training split to search on.")
    executions_per_trial: int = field(1, "Trainings per trial, averaged.")
    warm_start: bool = field(True, "The final training starts from the chosen trial's "
                                   "best epoch and keeps it unless it scores higher on "
                                   "validation; false: from the pretrained weights.")
    search_space: str = field("", "JSON file overriding the default search space.")
    max_failed_trials: int = field(3, "Consecutive failed trials before the search stops.")
    overwrite: bool = field(False, "Start the search afresh instead of resuming it.")
    tuner_id: str = field("", "Distributed search: 'chief' serves the oracle, tuner0, "
                              "tuner1... run trials (default: $KERASTUNER_TUNER_ID).")
    oracle_address: str = field("", "Distributed search: the chief's host:port (default: "
                                    "$KERASTUNER_ORACLE_IP:$KERASTUNER_ORACLE_PORT).")


@dataclasses.dataclass(frozen=True)
class ExportConfig:
    export_version: int = field(0, "SavedModel version sub-folder under saved_model/ "
                                   "(TF Serving layout); 0: one above the highest present.")
    export_tta: bool = field(False, "Export the flip test-time augmentation (as --tta=flip) "
                                    "in every signature, and in the TFLite and ONNX models.")
    warmup_requests: int = field(8, "TF Serving warm-up records from validation images; "
                                    "0: none.")


@dataclasses.dataclass(frozen=True)
class RobustnessConfig:
    robustness_eval: bool = field(False, "Accuracy under FGSM/PGD attacks and common "
                                         "corruptions, for every model of the run.")
    robustness_epsilons: tuple[float, ...] = field(
        (0.002, 0.005, 0.01, 0.02), "Attack sizes evaluated, in [0, 1] pixel units.")
    robustness_examples: int = field(500, "Test images attacked and corrupted; 0: all.")
    robustness_pgd_steps: int = field(10, "PGD steps of the evaluation attack.")


@dataclasses.dataclass(frozen=True)
class CompressConfig:
    export_tflite: tuple[str, ...] = field((), "TFLite quantization modes to convert, "
                                               "evaluate and time.", choices=TFLITE_MODES)
    keras_int8: bool = field(False, "Also evaluate Keras 3's model.quantize('int8') variant.")
    export_onnx: bool = field(False, "Also convert the classifier to ONNX (tf2onnx) and "
                                     "evaluate and time it in onnxruntime.")
    prune_sparsity: float = field(0.0, "Magnitude-prune the fine-tuned weights to this "
                                       "sparsity in a short extra fine-tune; 0 disables.")
    prune_epochs: int = field(1, "Epochs of the pruning fine-tune.")
    representative_examples: int = field(200, "Training images that calibrate int8.")
    compression_tolerance: float = field(0.01, "Accuracy drop (fraction) beyond which a "
                                               "compressed variant is flagged.")


@dataclasses.dataclass(frozen=True)
class AdversarialConfig:
    adversarial: str = field("none", "After training, adversarially fine-tune a copy of the "
                                     "model on FGSM or PGD examples (see --adversarial_*).",
                             choices=ADVERSARIAL_ATTACKS)
    adversarial_epsilon: float = field(0.01, "Attack size: max per-pixel change, in [0, 1] "
                                             "pixel units.")
    adversarial_mix: float = field(0.5, "Fraction of each batch replaced by its adversarial "
                                        "examples.")
    adversarial_epochs: int = field(1, "Epochs of adversarial fine-tuning.")
    pgd_steps: int = field(5, "PGD steps per adversarial training example.")


@dataclasses.dataclass(frozen=True)
class EnsembleConfig:
    ensemble_top_k: int = field(0, "Average the K best search trials' models (>= 2; "
                                   "0: no ensemble).")
    ensemble_members: str = field("restore", "Ensemble members besides the final model: "
                                             "restore the trials' checkpoints or retrain "
                                             "their configurations like the final model.",
                                  choices=ENSEMBLE_MEMBERS)


@dataclasses.dataclass(frozen=True)
class RunConfig:
    output_dir: str = field("", "Folder for config, checkpoints, logs, metrics, export.")
    seed: int = field(42, "Seed for splits, shuffling, initialisation.")
    strategy: str = field("auto", "Distribution: auto (Mirrored over 2+ GPUs, else default), "
                                  "mirrored, one_device, multi_worker (TF_CONFIG), tpu.",
                          choices=STRATEGIES)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    backbone: BackboneConfig = dataclasses.field(default_factory=BackboneConfig)
    head: HeadConfig = dataclasses.field(default_factory=HeadConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    search: SearchConfig = dataclasses.field(default_factory=SearchConfig)
    robustness: RobustnessConfig = dataclasses.field(default_factory=RobustnessConfig)
    export: ExportConfig = dataclasses.field(default_factory=ExportConfig)
    compress: CompressConfig = dataclasses.field(default_factory=CompressConfig)
    adversarial: AdversarialConfig = dataclasses.field(default_factory=AdversarialConfig)
    ensemble: EnsembleConfig = dataclasses.field(default_factory=EnsembleConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# One section per stage, in pipeline order; flag names do not depend on the section.
SECTIONS = {"data": DataConfig, "backbone": BackboneConfig, "head": HeadConfig,
            "train": TrainConfig, "search": SearchConfig, "robustness": RobustnessConfig,
            "export": ExportConfig, "compress": CompressConfig,
            "adversarial": AdversarialConfig, "ensemble": EnsembleConfig}


def leaf_fields() -> list[tuple[str | None, dataclasses.Field]]:
    """Every flag-backed field as (section or None, field); flag name = field name."""
    top = [(None, f) for f in dataclasses.fields(RunConfig) if f.name not in SECTIONS]
    nested = [(s, f) for s, cls in SECTIONS.items() for f in dataclasses.fields(cls)]
    return top + nested


def from_flat(values: dict[str, Any]) -> RunConfig:
    """Builds a RunConfig from {flag_name: value}; missing names keep their defaults."""
    sections = {s: {} for s in SECTIONS}
    top = {}
    for section, f in leaf_fields():
        if f.name in values:
            value = values[f.name]
            if isinstance(f.default, tuple):
                value = tuple(value)
            (sections[section] if section else top)[f.name] = value
    built = {s: SECTIONS[s](**kw) for s, kw in sections.items()}
    return RunConfig(**top, **built)


def to_flat(cfg: RunConfig) -> dict[str, Any]:
    """{flag_name: value} of every field; the inverse of from_flat."""
    return {f.name: getattr(getattr(cfg, s) if s else cfg, f.name) for s, f in leaf_fields()}


def native_image_size(backbone: BackboneConfig) -> int:
    """What --image_size=0 trains at without a search: the catalogued backbone's size."""
    try:
        return catalogue.lookup(backbone.backbone or backbone.hub_handle).image_size
    except ValueError:  # no name: a handle
        return NATIVE_IMAGE_SIZE


def is_tfds_name(dataset: str) -> bool:
    return not (os.sep in dataset or dataset.startswith((".", "~")) or os.path.isdir(dataset))
