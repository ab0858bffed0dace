"""The learning-rate range test on a run's own model and data: the backbone frozen, one
training step per rate while the rate grows from 1e-7 to 10, until the loss diverges.
Writes lr_find.json and lr_find.png into --output_dir and prints the suggested rate
(use it as --learning_rate, or run with --learning_rate=find to do both at once).

Usage: python -m tftransfer.lr_find --flagfile=FILE [--flag=value ...]
       python -m tftransfer.lr_find --dataset=DATA --backbone=NAME --output_dir=DIR

Takes the same flags as python -m tftransfer.run (--helpfull lists them).
"""
from tftransfer.cli.lr_find import entry_point

if __name__ == "__main__":
    entry_point()
