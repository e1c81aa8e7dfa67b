"""Entry point of the NumPy backend (`codegen/numpy_backend/`) for feed-forward networks."""
from codegen.numpy_backend.feedforward import emit_feedforward

__all__ = ["emit_feedforward"]
