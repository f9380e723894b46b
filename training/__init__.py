"""MNIST data, training, evaluation and ONNX export for LeNet-5."""
