"""The built-in cells (stages plus prose, PyTorch layouts, size-argument names) and the spec parser."""
from catalogue.cells import CELLS, get_cell

__all__ = ["CELLS", "get_cell"]
