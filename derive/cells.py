"""The built-in cells, each an ordered tuple of functional stages (data, not code)."""
from __future__ import annotations

from derive.errors import DeriveError
from derive.stages import Cell, Kind, affine, elementwise

_GATE_ROLE = {"f": "forget gate", "i": "input gate", "g": "candidate cell value",
              "o": "output gate"}


def _gate(name):
    return affine(f"a_{name}", ("x", "h_prev"), (f"W_{name}", f"U_{name}"), f"b_{name}", "H",
                  note=f"pre-activation of the {_GATE_ROLE[name]}")


LSTM = Cell(
    name="lstm",
    description="LSTM with a forget gate, no peepholes (Hochreiter & Schmidhuber; Gers et al.)",
    inputs=(("x", "D"),),
    state=(("h", "H"), ("c", "H")),
    output="h",
    stages=(
        _gate("f"), _gate("i"), _gate("g"), _gate("o"),
        elementwise(Kind.SIGMOID, "f", "a_f", note="forget gate"),
        elementwise(Kind.SIGMOID, "i", "a_i", note="input gate"),
        elementwise(Kind.TANH, "g", "a_g", note="candidate cell value"),
        elementwise(Kind.SIGMOID, "o", "a_o", note="output gate"),
        elementwise(Kind.MUL, "m", "f", "c_prev", note="part of the old cell that is kept"),
        elementwise(Kind.MUL, "n", "i", "g", note="new content written to the cell"),
        elementwise(Kind.ADD, "c", "m", "n", note="new cell state"),
        elementwise(Kind.TANH, "k", "c", note="squashed cell state"),
        elementwise(Kind.MUL, "h", "o", "k", note="new hidden state and output"),
    ),
)

CELLS = {cell.name: cell for cell in (LSTM,)}


def get_cell(name: str) -> Cell:
    """The built-in cell called `name`, or a DeriveError listing the known ones."""
    try:
        return CELLS[name]
    except KeyError:
        raise DeriveError(f"unknown cell {name!r}; known cells: {', '.join(sorted(CELLS))}") from None
