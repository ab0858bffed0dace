"""`python -m tftransfer.predict`: see tftransfer/cli/predict.py."""
from tftransfer.cli.predict import entry_point

if __name__ == "__main__":
    entry_point()
