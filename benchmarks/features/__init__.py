"""One script per feature measurement (time budget, streaming, serving, distributed, transfer, ONNX, threads)."""
