"""`python -m chapters.ch05_cnn_shapes_flops` runs shapes_flops.py (see --help)."""
from chapters.ch05_cnn_shapes_flops.shapes_flops import main
from common.cli import run

if __name__ == "__main__":
    run(main)
