"""Render cells' artefacts: the one place that sequences the work, in one direction.

A `Build` derives each cell once and renders its module once; for a cell's document it
measures the gradient flow by running that module text (and the plain RNN's, rendered by
the same build), gathers everything into a `Document`, and hands it to the renderers:

    derive -> module (.py) -> measure with it -> Document -> .tex -> .html (+ the PDF's assets)

A cell arrives as its catalogue `Entry` (the mathematics plus its words, size-argument
names and PyTorch layout, which the renderers print).  `render_all(name)` and
`render_cell(entry)` are one-cell builds returning {file name: text}.
Writing files is `lstm_derive.files`, compiling PDFs `lstm_derive.pdf`.
"""
from __future__ import annotations

from dataclasses import dataclass

from codegen.document import Document
from codegen.emit_feedforward import emit_feedforward
from codegen.emit_html import emit_html
from codegen.emit_jax import emit_jax
from codegen.emit_latex import emit_latex
from codegen.emit_numpy import emit_numpy
from codegen.emit_torch import emit_torch
from catalogue.cells import RNN, get_entry
from catalogue.entry import Entry
from derive.derivation import Derivation, derive
from codegen.layout import to_json
from lstm_derive.document import make_document
from lstm_derive.layout import Layouts

BUILD_COMMAND = "lstm-derive build"


@dataclass(frozen=True)
class Rendered:
    """One cell's artefacts: texts by file name, and the files its .tex includes by name."""

    files: dict[str, str]
    assets: dict[str, bytes]   # the gradient-flow plot's PDF, when it was drawn


class Build:
    """One build: every cell it touches is derived once and its module rendered once
    (the LSTM's derivation and the RNN's module serve every document that compares with them)."""

    def __init__(self, command: str = BUILD_COMMAND, layout_folders=()):
        self.command = command   # the command named in every generated file's header
        self.layouts = Layouts(layout_folders)   # stored stage-graph layouts, looked up first
        self._derivations: dict = {}
        self._modules: dict = {}

    def derivation(self, cell) -> Derivation:
        """The cell's derivation, derived on first use."""
        if cell not in self._derivations:
            self._derivations[cell] = derive(cell)
        return self._derivations[cell]

    def module(self, entry: Entry) -> str:
        """The cell's generated module text (NumPy)."""
        if entry not in self._modules:
            emit = emit_numpy if entry.cell.recurrent else emit_feedforward
            self._modules[entry] = emit(self.derivation(entry.cell), entry, self.command)
        return self._modules[entry]

    def document(self, entry: Entry) -> Document:
        """The document's data; its gradient flow is measured with `module(entry)`."""
        cell = entry.cell
        compared = (None if entry.compare in (None, cell.name)   # the LSTM, the GRU... or none
                    else self.derivation(get_entry(entry.compare).cell))
        reference = ((RNN.name, self.module(RNN))
                     if cell.recurrent and cell.name != RNN.name else None)
        return make_document(entry, self.derivation(cell), compared, self.module(entry), reference,
                             layouts=self.layouts)

    def render(self, entry: Entry, only: str | None = None) -> Rendered:
        """All of a cell's artefacts (and its stage graph's layout, `layout/<cell>.json`), or with `only=".py"` (".tex", ".html", "torch", "jax") just
        that file; a recurrent cell's PyTorch module is `torch/<cell>.py`, its JAX module `jax/<cell>.py`."""
        cell, files = entry.cell, {}
        if only in (None, ".py"):
            files[f"{cell.name}.py"] = self.module(entry)
        if only in (None, "torch") and cell.recurrent:
            files[f"torch/{cell.name}.py"] = emit_torch(self.derivation(cell), entry, self.command)
        if only in (None, "jax") and cell.recurrent:
            files[f"jax/{cell.name}.py"] = emit_jax(self.derivation(cell), entry, self.command)
        if only in (".py", "torch", "jax"):
            return Rendered(files, {})
        document = self.document(entry)
        tex = emit_latex(document, self.command)
        if only in (None, ".tex"):
            files[f"{cell.name}.tex"] = tex
        if only in (None, ".html"):
            files[f"{cell.name}.html"] = emit_html(document, tex)   # converted from the .tex
        if only is None:   # the stage graph's layout, stored so that a build needs no Graphviz
            files[f"layout/{cell.name}.json"] = to_json(document.graph[1])
        assets = {document.plot_file: document.plot.pdf} if document.plot else {}
        return Rendered(files, assets)


def render_all(name: str, command: str = BUILD_COMMAND) -> dict[str, str]:
    """The artefacts of a built-in cell."""
    return render_cell(get_entry(name), command)


def render_cell(entry: Entry, command: str = BUILD_COMMAND, only: str | None = None) -> dict[str, str]:
    """{file name: text} for any cell, built in or from a spec (see `Build.render`)."""
    return Build(command).render(entry, only).files
