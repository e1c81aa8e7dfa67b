"""The built-in cells (each an `Entry`: stages plus prose, PyTorch layout, size-argument names)
and the spec parser that builds entries from TOML.  The mathematics of a cell is `entry.cell`."""
from catalogue.cells import CELLS, get_cell, get_entry
from catalogue.entry import Entry, TorchLayout

__all__ = ["CELLS", "Entry", "TorchLayout", "get_cell", "get_entry"]
