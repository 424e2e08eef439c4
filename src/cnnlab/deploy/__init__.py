"""Deployment: export to ONNX (`export`), int8 quantization (`quantize`), inference through ONNX Runtime
(`onnx_runtime`) and the inference-engine benchmark (`bench`). onnx / onnxruntime come with `cnnlab[deploy]`."""
