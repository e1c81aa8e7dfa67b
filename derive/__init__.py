"""lstm-derive's mathematics: stages, operations, SymPy differentiation and the reverse sweep.

It imports nothing else of the project.  Built-in cells live in `catalogue`:

    from catalogue import get_cell
    from derive import derive
    print(derive(get_cell("lstm")))
"""
from derive.derivation import Derivation, derive
from derive.errors import DeriveError

__all__ = ["Derivation", "DeriveError", "derive"]
