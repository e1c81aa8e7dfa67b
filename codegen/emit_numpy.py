"""Entry point of the NumPy backend (`codegen/numpy_backend/`) for recurrent cells."""
from codegen.numpy_backend.emit import emit_numpy

__all__ = ["emit_numpy"]
