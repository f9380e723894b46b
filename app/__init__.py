"""Web service: FastAPI on onnxruntime serving the exported LeNet-5 (never imports torch)."""
