"""`python -m tftransfer.evaluate`: see tftransfer/cli/evaluate.py."""
from tftransfer.cli.evaluate import entry_point

entry_point()
