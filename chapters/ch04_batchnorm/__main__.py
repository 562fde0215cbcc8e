"""`python -m chapters.ch04_batchnorm` runs the whole chapter: the numpy checks, then the training comparison."""
from chapters.ch04_batchnorm.batchnorm import main
from common.cli import run

if __name__ == "__main__":
    run(main)
