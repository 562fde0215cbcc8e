"""`python -m chapters.ch01_house_price` runs the Paddle version (the numpy one: `.numpy_from_scratch`)."""
from chapters.ch01_house_price.train import main

if __name__ == "__main__":
    main()
