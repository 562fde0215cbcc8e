"""`python -m chapters.ch06_from_scratch` runs the whole chapter (see from_scratch.py): checks, training, demos."""
from chapters.ch06_from_scratch.from_scratch import main
from common.cli import run

if __name__ == "__main__":
    run(main)
