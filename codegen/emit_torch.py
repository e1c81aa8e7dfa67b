"""Entry point of the PyTorch backend (`codegen/torch_backend/`) for recurrent cells."""
from codegen.torch_backend.emit import emit_torch

__all__ = ["emit_torch"]
