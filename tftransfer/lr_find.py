"""`python -m tftransfer.lr_find`: see tftransfer/cli/lr_find.py."""
from tftransfer.cli.lr_find import entry_point

if __name__ == "__main__":
    entry_point()
