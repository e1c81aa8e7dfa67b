"""A catalogue entry: a cell's mathematics together with what the catalogue says about it.

`Entry.cell` is the `derive.stages.Cell` the engine differentiates; everything else is for
people and for other frameworks, never for the calculus: the one-line `description` and the
`notes` (LaTeX prose on how the cell differs from the one it is compared with, `compare`) and the `intuition` (what each gate
decides and why) that the document prints, the works it `cites`, the
`init_params` argument name of each size symbol, and where the parameters sit in the state
dict of the matching PyTorch module.  Renderers read these from the entry they are handed.
"""
from __future__ import annotations

from dataclasses import dataclass

from derive.stages import Cell


@dataclass(frozen=True)
class TorchLayout:
    """Where a cell's parameters live in the state dict of the matching `torch.nn` module.

    `keys` maps each state-dict key to the parameters stacked in it, one per block of rows.
    A parameter named in several keys (PyTorch's two biases) is exported in the first and
    as zeros elsewhere, and imported as the sum of all its blocks.
    """

    module: str
    keys: tuple[tuple[str, tuple[str, ...]], ...]
    options: str = ""   # constructor options beyond the sizes, as Python source


@dataclass(frozen=True)
class Entry:
    """A cell and its words: description, notes, size-argument names, PyTorch layout."""

    cell: Cell
    description: str
    notes: tuple[str, ...] = ()
    size_args: tuple[tuple[str, str], ...] = (("D", "input_size"), ("H", "hidden_size"))
    torch: TorchLayout | None = None   # the same cell in PyTorch, when it has one
    # the built-in cell the document compares this one with (and `notes` with); None: none
    compare: str | None = "lstm"
    intuition: tuple[str, ...] = ()   # LaTeX prose: what each part of the cell is for
    cites: tuple[str, ...] = ()       # keys of `catalogue.references`: where the cell comes from
    stabiliser: str | None = None     # a state the document proves the outputs do not depend on

    @property
    def name(self) -> str:
        return self.cell.name
