"""Transfer learning in one command: data -> pretrained backbone + head -> (search) ->
training -> evaluation -> SavedModel, TFLite variants and a report in --output_dir.

Usage: python -m tftransfer.run --dataset=DATA --backbone=NAME --output_dir=DIR [flags]
       python -m tftransfer.run --dataset=DATA --hub_handle=HANDLE --output_dir=DIR [flags]
       python -m tftransfer.run --flagfile=FILE [--flag=value ...]

Main flags:
  --dataset          TFDS name (with --data_dir) or a folder of class sub-folders
  --backbone         a catalogued model: efficientnet_lite0 (offline), efficientnetv2_b0,
                     efficientnetv2_s, mobilenet_v3_large, resnet50_v2, bit_m_r50x1...
  --hub_handle       TF-Hub/Kaggle URL or local SavedModel of a feature-vector model
  --output_dir       where config, logs, metrics.json, report and saved_model/ go
  --time_budget      e.g. 20m: measure, search and train to end within it
  --image_size       input side; 0: the backbone's native size (224 unless --backbone)
  --fine_tune_depth  top backbone blocks to fine-tune: 0 frozen, -1 all
  --epochs, --batch_size, --learning_rate, --optimizer
  --search           none, random, bayesian or hyperband (auto: random with a budget)
  --export_tflite    float,dynamic,float16,int8 variants to convert and evaluate
  --flagfile         read flags from a file; later flags override it

Examples:
  python -m tftransfer.assets    # builds the offline Lite0 and Fashion-MNIST once
  python -m tftransfer.run --flagfile=experiments/quickstart.flags
  python -m tftransfer.run --dataset=/data/flowers --backbone=efficientnetv2_b0 \\
      --time_budget=30m --output_dir=runs/flowers
  python -m tftransfer.run --dataset=cifar10 --hub_handle=DIR --image_size=224 \\
      --fine_tune_depth=2 --epochs=5 --output_dir=runs/cifar

A bad flag, data or handle ends the run with one line and exit status 2. On a terminal,
Keras shows a progress bar in each epoch; in a pipe or log, one line per epoch.
TensorFlow's C++ start-up lines are hidden unless TF_CPP_MIN_LOG_LEVEL is set.
--helpfull lists every flag with its default.
"""
# The entry point of `python -m tftransfer.run`; absl prints the docstring above for
# --help. The stages are wired in tftransfer/cli/run.py.
from tftransfer.cli.run import entry_point

if __name__ == "__main__":
    entry_point()
