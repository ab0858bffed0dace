"""`python -m tftransfer.launch`: see tftransfer/cli/launch.py."""
from tftransfer.cli.launch import entry_point

if __name__ == "__main__":
    entry_point()
