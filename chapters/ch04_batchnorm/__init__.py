"""Chapter 4: batch normalisation (批归一化) and dropout (丢弃法): numpy vs Paddle, then LeNet on MNIST with and without them."""
