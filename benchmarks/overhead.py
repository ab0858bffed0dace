"""A tftransfer training epoch / a minimal hand-written Keras `fit` of the same model on the
same data.

tftransfer's side is train.train: its phase compile (loss with label smoothing, accuracy
and top-5 metrics, cosine schedule), TensorBoard, the best-weights checkpoint, the
per-epoch backup that lets a killed run resume, early stopping and the restore of the
best weights. The hand-written side compiles the same Keras model with Adam, sparse
cross-entropy and accuracy and calls `fit` with the same training and validation
datasets and epochs. Both include tracing (each recompiles); the sides take turns.

    python3 benchmarks/overhead.py [--quick] [--examples=3840] [--epochs=5] [--rounds=3]
"""
from __future__ import annotations

import dataclasses

import _common


def _add_arguments(parser) -> None:
    parser.add_argument("--examples", type=int, default=3840)
    parser.add_argument("--image_size", type=int, default=48)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)


def main() -> None:
    args = _common.arguments(__doc__, _add_arguments)
    examples, size, epochs, rounds = (256, 32, 1, 1) if args.quick else (
        args.examples, args.image_size, args.epochs, args.rounds)
    _common.print_machine()
    cfg = _common.real_config(train_split=f"train[:{examples}]", image_size=size,
                              batch_size=64, epochs=epochs, head_epochs=epochs,
                              fine_tune_depth=0, early_stopping_patience=epochs)
    import keras

    from tftransfer.data import pipeline as data_lib
    from tftransfer.model import classifier as model_lib
    from tftransfer.train import training as train

    data = data_lib.load_data(cfg.data, cfg.seed, "")   # decoded into the memory cache
    model = model_lib.build_model(cfg, data.num_classes)

    def by_hand():
        model.compile(optimizer=keras.optimizers.Adam(cfg.train.learning_rate),
                      loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        model.fit(data.train, validation_data=data.validation, epochs=epochs, verbose=0)

    def with_tftransfer():
        run_cfg = dataclasses.replace(cfg, output_dir=_common.scratch_dir("overhead"))
        train.train(model, model.backbone, data, run_cfg)

    seconds = _common.alternate({"keras fit": by_hand, "tftransfer": with_tftransfer}, rounds)
    for name, values in seconds.items():
        print(f"{name}: {min(values) / epochs:.2f} s per epoch "
              f"({epochs} epochs with validation, tracing included; runs: "
              f"{', '.join(f'{s:.1f}' for s in values)} s)")
    print(f"data: {data.sizes} at {size} px, batch {cfg.data.batch_size}, frozen backbone")
    ratio = _common.ratio_of_best(seconds["tftransfer"], seconds["keras fit"])
    _common.goal(ratio <= 1.05, "<= 1.05")
    _common.report("overhead", ratio)


if __name__ == "__main__":
    main()
