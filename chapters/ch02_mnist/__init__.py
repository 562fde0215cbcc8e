"""Chapter 2: MNIST handwritten digits (手写数字识别).

Softmax regression, an MLP and LeNet; optimizers, checkpoints, data parallel training, export and prediction.
"""
