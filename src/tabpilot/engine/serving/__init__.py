"""Serving predictions from model.onnx with onnxruntime: no training library."""
