"""Chapter 5: output shapes, parameter counts and FLOPs of CNNs (卷积网络的输出尺寸、参数量与计算量).

shapes_flops.py answers the course's two homework questions and inspects any model with common.inspector;
published_macs.py checks the inspector's MACs against the published figures of five classic networks.
"""
