"""`python -m tftransfer.report`: see tftransfer/cli/report.py."""
from tftransfer.cli.report import entry_point

entry_point()
