"""The JAX backend: a printer (`printer.py`), a functional spelling of the operation
records (`spell.py`) and a template, over the same `codegen.program` as the NumPy backend."""
