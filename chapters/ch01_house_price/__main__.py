"""`python -m chapters.ch01_house_price` runs the Paddle version (the numpy one: `.numpy_from_scratch`)."""
from chapters.ch01_house_price.train import main
from common.cli import run

if __name__ == "__main__":
    run(main)
