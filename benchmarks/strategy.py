"""Training step time under MirroredStrategy with one device / without a strategy.

Two copies of the same classifier (Lite0 fine-tuned end to end + head), each built and
compiled in its own scope by tftransfer's stages: one under distribute.make_strategy
("mirrored") on a machine with one device (one replica), one under the default strategy
(what --strategy=auto picks without GPUs). They train on the same data.load_data training
split (decoded images cached in memory), one epoch at a time, taking turns; the step time
is the epoch time over its steps. (Batches materialised as one in-memory tensor are not
used here: distributing such a dataset rewrites its graph, large constant included, which
would be timed as the strategy's cost.)

    python3 benchmarks/strategy.py [--quick] [--examples=1280] [--rounds=3]
"""
from __future__ import annotations

import _common


def _add_arguments(parser) -> None:
    parser.add_argument("--examples", type=int, default=1280)
    parser.add_argument("--image_size", type=int, default=48)
    parser.add_argument("--rounds", type=int, default=3)


def _classifier(cfg, num_classes: int, strategy, steps: int):
    from tftransfer.model import classifier as model_lib, compile as compile_lib

    with strategy.scope():
        model = model_lib.build_model(cfg, num_classes)
        model.backbone.set_fine_tune_depth(cfg.backbone.fine_tune_depth)
        compile_lib.compile_for_phase(model, cfg.train, num_classes, cfg.head.label_smoothing,
                                      cfg.train.learning_rate, steps, 0)
    return model


def main() -> None:
    args = _common.arguments(__doc__, _add_arguments)
    examples, size, rounds = (128, 32, 1) if args.quick else (
        args.examples, args.image_size, args.rounds)
    _common.print_machine()
    cfg = _common.real_config(train_split=f"train[:{examples}]", validation_fraction=0.0,
                              image_size=size, batch_size=64, fine_tune_depth=-1,
                              bn_inference=False)
    from tftransfer.data import pipeline as data_lib
    from tftransfer.distribute import strategy as distribute

    mirrored = distribute.make_strategy("mirrored", cfg.data.batch_size)
    default = distribute.make_strategy("auto", cfg.data.batch_size)
    print(f"mirrored replicas: {mirrored.num_replicas_in_sync}; default: "
          f"{type(default).__name__}")
    data = data_lib.load_data(cfg.data, cfg.seed, "")
    steps = -(-data.sizes["train"] // cfg.data.batch_size)
    models = {"no strategy": _classifier(cfg, data.num_classes, default, steps * (rounds + 1)),
              "mirrored, 1 device": _classifier(cfg, data.num_classes, mirrored,
                                                steps * (rounds + 1))}
    epochs = {name: (lambda m=m: m.fit(data.train, epochs=1, verbose=0))
              for name, m in models.items()}
    _common.alternate(epochs, 1)  # traces each train function
    seconds = _common.alternate(epochs, rounds)
    for name, values in seconds.items():
        print(f"{name}: {min(values) / steps * 1000:.1f} ms per step "
              f"(batch {cfg.data.batch_size} at {size} px, full fine-tuning)")
    print("epoch seconds per round:", {name: [round(v, 2) for v in values]
                                        for name, values in seconds.items()})
    ratio = _common.ratio_of_best(seconds["mirrored, 1 device"], seconds["no strategy"])
    _common.goal(ratio <= 1.05, "<= 1.05")
    _common.report("strategy", ratio)


if __name__ == "__main__":
    main()
