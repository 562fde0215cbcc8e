"""Chapter 1: house-price regression (波士顿房价预测), by hand in numpy, then with Paddle."""
