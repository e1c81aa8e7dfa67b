"""lstm-derive's mathematics: stages, cells, SymPy differentiation and the reverse sweep.

    from derive import derive, get_cell
    print(derive(get_cell("lstm")))
"""
from derive.cells import CELLS, get_cell
from derive.derivation import Derivation, derive
from derive.errors import DeriveError

__all__ = ["CELLS", "Derivation", "DeriveError", "derive", "get_cell"]
