"""Files: model files (safetensors + a typed `RunMeta`), resume checkpoints and atomic writes."""

from cnnlab.io.checkpoint import CHECKPOINT_FILE, load_checkpoint, save_checkpoint
from cnnlab.io.files import atomic_write, remove_stale_temporaries, save_json
from cnnlab.io.meta import FORMAT, ONNX_FORMAT, DataRecord, ExportInfo, MetaError, RunMeta
from cnnlab.io.model_file import MODEL_FILE, load_model, read_meta, resolve_model_path, save_model

__all__ = [
    "CHECKPOINT_FILE",
    "FORMAT",
    "MODEL_FILE",
    "ONNX_FORMAT",
    "DataRecord",
    "ExportInfo",
    "MetaError",
    "RunMeta",
    "atomic_write",
    "load_checkpoint",
    "load_model",
    "read_meta",
    "remove_stale_temporaries",
    "resolve_model_path",
    "save_checkpoint",
    "save_json",
    "save_model",
]
