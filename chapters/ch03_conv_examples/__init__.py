"""Chapter 3: convolution by example (卷积算子应用举例).

Three hand-designed kernels show what a convolution does to an image: black/white boundary detection
(黑白边界检测), edge detection on a photo (图像中物体边缘检测) and mean blur (图像均值模糊); then pooling (池化),
activation functions (激活函数) and vanishing gradients. The training step learns a kernel from
(input, output) pairs and shows that gradient descent recovers the designed one: CNN kernels are parameters.

    python -m chapters.ch03_conv_examples [--image PATH] [--out DIR]
"""
