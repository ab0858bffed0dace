"""Evaluates an exported model on a TFDS split or an image folder and prints (or writes)
the same metrics as a run's metrics.json.

Usage: python -m tftransfer.evaluate --model_dir=DIR --dataset=D [--split=test]
           [--data_dir=DIR] [--output=FILE]

Examples:
  python -m tftransfer.evaluate --model_dir=runs/quickstart/saved_model \
      --dataset=fashion_mnist --data_dir=~/.cache/tftransfer/tensorflow_datasets
  python -m tftransfer.evaluate --model_dir=runs/flowers/saved_model --dataset=/data/new \
      --split=all --output=new.json

--helpfull lists every flag.
"""
# The entry point of `python -m tftransfer.evaluate`: tftransfer/cli/evaluate.py.
from tftransfer.cli.evaluate import entry_point

entry_point()
