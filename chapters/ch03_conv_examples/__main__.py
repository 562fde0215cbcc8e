from chapters.ch03_conv_examples.conv_examples import main
from common.cli import run

if __name__ == "__main__":
    run(main)
