"""`python -m chapters.ch02_mnist` trains (see train.py); `.predict` classifies images, `.bench` times the loop."""
from chapters.ch02_mnist.train import main
from common.cli import run

if __name__ == "__main__":
    run(main)
