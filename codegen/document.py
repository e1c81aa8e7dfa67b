"""The data a cell's document is rendered from, handed to the renderers whole.

`lstm_derive` builds a `Document` (it derives, measures and draws); `emit_latex` and
`emit_html` only print what is in it.  It holds the cell's derivation and words, the
derivation of the cell it is compared with and what changes from that one, and for a recurrent cell the derivations of its output heads,
its one-step state Jacobians, the gradient flow measured with its generated module
(`Flow`: plain numbers) and that measurement's plot, already drawn.
"""
from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from codegen.figures import Figure
from codegen.layout import Layout
from derive.compare import Comparison
from derive.derivation import Derivation
from derive.jacobians import StateJacobian
from derive.stabiliser import Stabiliser


@dataclass(frozen=True)
class Setting:
    """The constants of the gradient-flow measurement, for the document's account of it."""

    hidden: int            # H
    input: int             # D
    batch: int
    open_bias: float       # what the biases of the opened gates are set to
    open_gate: float       # sigmoid(open_bias): what such a gate keeps per step
    closed_gate: sp.Expr   # sigmoid(0), exactly: a gate at the usual initialisation


@dataclass(frozen=True)
class Flow:
    """Mean norm of dL/d(state at T-k) for every k in `steps`, one curve per setting."""

    steps: tuple[int, ...]
    curves: tuple[tuple[str, tuple[float, ...]], ...]   # (label, one norm per k)
    biases: tuple[str, ...]   # biases of the gates on a weight-free state path (opened in a curve)
    setting: Setting
    # the weight-free state path alone (its diagonals multiplied back from dL/ds_T), for
    # the cell as initialised and with its gates opened; empty without such a path
    paths: tuple[tuple[str, tuple[float, ...]], ...] = ()


@dataclass(frozen=True)
class Plot:
    """The gradient-flow plot, drawn once: SVG for the page, PDF for the LaTeX document."""

    svg: str
    pdf: bytes


@dataclass(frozen=True)
class Row:
    """One line of a worked example: an equation's label, the value (or gradient) it
    computes, and that value's entries at every step (one tuple per step)."""

    label: str
    name: str
    values: tuple[tuple[float, ...], ...]


@dataclass(frozen=True)
class Published:
    """A number a published worked example prints (`printed`, as printed) beside ours; when
    they differ beyond his digits, `rounded` is ours recomputed from his rounded inputs."""

    name: str
    step: int
    printed: str
    ours: float
    agrees: bool
    rounded: float | None = None


@dataclass(frozen=True)
class Worked:
    """A tiny problem run through the generated module, every stage and backward step numbered.

    `problem` names it: "gomez" (the LSTM on Gomez 2016), "mazur" (the MLP on Mazur 2015),
    "mazur_label" (Mazur's network with a class label) or "small" (H = 1, D = 2, T = 2,
    parameters drawn with `seed` and rounded).  Parameters are (name, entries) with their
    shapes; `given` the inputs and initial state per step; `targets` and `direct` (the direct
    loss gradient of the output) one tuple per step.
    """

    problem: str
    seed: int | None
    params: tuple[tuple[str, tuple[float, ...]], ...]
    shapes: tuple[tuple[str, tuple[int, ...]], ...]
    given: tuple[Row, ...]
    targets: tuple[tuple[float, ...], ...]
    direct: tuple[tuple[float, ...], ...]
    forward: tuple[Row, ...]
    backward: tuple[Row, ...]
    grads: tuple[Row, ...]
    loss: float
    published: tuple[Published, ...] = ()


@dataclass(frozen=True)
class Document:
    """Everything a cell's document shows; feed-forward networks have no heads, Jacobians or flow."""

    derivation: Derivation
    description: str
    notes: tuple[str, ...] = ()
    compared: Derivation | None = None      # the cell this one is compared with (the LSTM's, the GRU's...)
    comparison: Comparison | None = None    # what changes from that cell to this one
    heads: tuple[Derivation, ...] = ()      # output layers that put a loss on the outputs
    jacobians: tuple[StateJacobian, ...] = ()
    flow: Flow | None = None
    plot: Plot | None = None                # None when matplotlib is not installed
    worked: Worked | None = None            # a tiny problem, run through the generated module
    intuition: tuple[str, ...] = ()         # LaTeX prose: what each part of the cell is for
    cites: tuple[str, ...] = ()             # the keys of the works the cell comes from
    references: tuple[tuple[str, str], ...] = ()   # (key, LaTeX entry) of every work cited
    graph: tuple[Figure, Layout] | None = None     # the stage graph and its layout (by Graphviz)
    fork: tuple[Figure, Layout] | None = None      # one fork of it, both directions; None: no fork
    # the generated module's lines that run one backward step, as the module has them (less
    # their common indentation); each cites in its comment the B-equations it computes
    code: tuple[str, ...] = ()
    stabiliser: Stabiliser | None = None    # what the stabiliser state contributes, proved

    @property
    def plot_file(self) -> str:
        """The name under which the LaTeX document includes the plot's PDF."""
        return f"{self.derivation.cell.name}-flow.pdf"
