"""Chapter 6: a neural network from scratch (从零实现神经网络): backpropagation, optimizers and embeddings by hand, checked against Paddle."""
