"""Entry point of the JAX backend (`codegen/jax_backend/`) for recurrent cells."""
from codegen.jax_backend.emit import emit_jax

__all__ = ["emit_jax"]
