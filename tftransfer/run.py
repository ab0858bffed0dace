"""`python -m tftransfer.run`: see tftransfer/cli/run.py."""
from tftransfer.cli.run import entry_point

if __name__ == "__main__":
    entry_point()
