"""Stages and cells: the forward computation written as plain, frozen data.

A `Stage` is the finest functional step of a cell: one affine map or one elementwise
function.  A `Cell` is an ordered tuple of stages plus the names of its per-step inputs,
its recurrent state and its per-step output.  Nothing here knows any calculus; the
calculus lives in `derive.rules`, the operations' table in `derive.ops`, the reverse sweep in `derive.derivation`.

Naming: inside one time step the previous value of a state variable `h` is called
`h_prev`; the stage named `h` defines its new value.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from derive.errors import DeriveError
from derive.ops import Kind, Op


class Loss(Enum):
    """Loss heads of feed-forward networks; `derive.rules.LOSSES` defines each one."""

    SQUARED_ERROR = "squared error"   # 1/2 sum (y - target)^2
    CROSS_ENTROPY = "cross-entropy"   # -sum target * log y, target one-hot


@dataclass(frozen=True)
class Stage:
    """One functional stage: `name = kind(inputs)`.

    For AFFINE stages `weights[k]` multiplies `inputs[k]`, `bias` is added and `size`
    names the output length ("H").  Elementwise stages have no weights.
    """

    name: str
    kind: Op
    inputs: tuple[str, ...]
    weights: tuple[str, ...] = ()
    bias: str | None = None
    size: str | None = None
    note: str = ""
    constant: float | None = None   # SCALE, SHIFT and RSQRT only

    def __str__(self) -> str:
        if self.kind is Kind.AFFINE:
            terms = [f"{w} @ {x}" for w, x in zip(self.weights, self.inputs)]
            terms += [self.bias] if self.bias else []
            return f"{self.name} = {' + '.join(terms)}"
        args = list(self.inputs) + ([repr(self.constant)] if self.constant is not None else [])
        return f"{self.name} = {self.kind.value}({', '.join(args)})"


def affine(name, inputs, weights, bias, size, note=""):
    """An affine stage `name = sum_k weights[k] @ inputs[k] + bias` of length `size`."""
    return Stage(name, Kind.AFFINE, tuple(inputs), tuple(weights), bias, size, note)


def elementwise(kind, name, *inputs, note="", constant=None):
    """An elementwise stage `name = kind(*inputs)` (with a constant for SCALE, SHIFT and RSQRT)."""
    return Stage(name, kind, tuple(inputs), note=note, constant=constant)


EPSILON = 1e-5   # a layer norm's epsilon, as torch.nn.LayerNorm's default


def layer_norm(tag, blocks, outputs, gains, shifts, note="", names=None):
    """Stages of LN(z; gamma, beta) = gamma (z - mean z) / sqrt(var z + eps) + beta over the
    stacked rows of `blocks` (each of one size), mean and biased variance over all their
    entries: block k gives `outputs[k]`, scaled by `gains[k]` and shifted by `shifts[k]`.

    The statistics are values of their own, `mu_<tag>`, `v_<tag>` and `r_<tag>` (a column
    per batch row, broadcast), so each is computed once and its derivative is the chain
    rule through two mean stages, one inverse square root and elementwise stages.  `names`
    (mean, variance, inverse deviation, squared deviations) replaces those names.
    """
    mu, var, rstd, deviations = names or (f"mu_{tag}", f"v_{tag}", f"r_{tag}",
                                          tuple(f"e_{z}" for z in blocks))
    what = note or f"the stacked {', '.join(blocks)}"
    squares = tuple(elementwise(Kind.SQUARED_DEVIATION, e, z, mu, note=f"squared deviation of {z}")
                    for z, e in zip(blocks, deviations))
    return (elementwise(Kind.MEAN, mu, *blocks, note=f"mean of {what}"),
            *squares,
            elementwise(Kind.MEAN, var, *(s.name for s in squares), note=f"variance of {what}"),
            elementwise(Kind.RSQRT, rstd, var, constant=EPSILON,
                        note=f"inverse standard deviation of {what}"),
            *(elementwise(Kind.NORMALISED, y, z, mu, rstd, g, b, note=f"layer-normalised {z}")
              for z, y, g, b in zip(blocks, outputs, gains, shifts)))


@dataclass(frozen=True)
class Cell:
    """A recurrent cell: per-step inputs, recurrent state, output and ordered stages.

    `inputs` and `state` pair each name with its size symbol ("D", "H").  A cell is
    mathematics only: its description, notes and PyTorch layout are the catalogue's
    (`catalogue.entry.Entry`).
    """

    name: str
    inputs: tuple[tuple[str, str], ...]
    state: tuple[tuple[str, str], ...]
    output: str
    stages: tuple[Stage, ...]
    vector_params: tuple[tuple[str, str], ...] = ()   # parameters read elementwise (p_f)
    loss: Loss | None = None   # the loss head of a feed-forward network
    positive: tuple[str, ...] = ()   # states positive in every state the cell reaches (a normaliser)
    # public parameters made of several vector parameters stacked: (name, blocks), the
    # blocks of one size, in order (a layer norm's gain over the stacked gates)
    packed: tuple[tuple[str, tuple[str, ...]], ...] = ()

    @property
    def recurrent(self) -> bool:
        return bool(self.state)

    @property
    def state_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.state)

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.inputs)

    def stage(self, name: str) -> Stage:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise KeyError(name)

    def sizes(self) -> dict[str, str]:
        """Size symbol of every per-step value: inputs, previous state, stage outputs."""
        sizes = dict(self.inputs)
        sizes.update({f"{name}_prev": size for name, size in self.state})
        known = dict(sizes, **dict(self.vector_params))
        for stage in self.stages:
            sizes[stage.name] = known[stage.name] = _stage_size(self, stage, known)
        return sizes

    @property
    def vector_param_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.vector_params)

    def params(self) -> tuple[tuple[str, tuple[str, ...]], ...]:
        """Parameters in their fixed public order, each with its shape in size symbols.

        Order: weights grouped by the value they multiply (the per-step inputs, then the
        previous state, then stage outputs), each group in stage order; then the biases;
        then the parameters read elementwise.
        """
        sizes = self.sizes()
        rank = {name: n for n, name in enumerate(
            list(self.input_names) + [f"{s}_prev" for s in self.state_names]
            + [s.name for s in self.stages])}
        terms = [(rank[x], n, w, (s.size, sizes[x]))
                 for n, s in enumerate(self.stages) if s.kind is Kind.AFFINE
                 for w, x in zip(s.weights, s.inputs)]
        ordered = [(w, shape) for *_, w, shape in sorted(terms)]
        ordered += [(s.bias, (s.size,)) for s in self.stages if s.kind is Kind.AFFINE and s.bias]
        ordered += [(name, (size,)) for name, size in self.vector_params]
        return tuple(ordered)


    def unpack(self, arrays: dict) -> dict:
        """Arrays keyed like `public_params()` (parameters or their gradients) keyed like
        `params()`: each packed one split into its blocks (views); the others as they are."""
        out = {k: v for k, v in arrays.items() if k not in dict(self.packed)}
        for public, blocks in self.packed:
            rows = len(arrays[public]) // len(blocks)
            out.update({b: arrays[public][n * rows:(n + 1) * rows] for n, b in enumerate(blocks)})
        return out

    def public_params(self) -> tuple[tuple[str, tuple[str, ...]], ...]:
        """`params()` with every packed parameter in place of its blocks (at its first block's
        place), its shape `("<blocks>*<size>",)`: what a generated module takes and returns."""
        shapes = dict(self.params())
        first = {blocks[0]: (name, blocks) for name, blocks in self.packed}
        inside = {b for _, blocks in self.packed for b in blocks}
        out = []
        for name, shape in self.params():
            if name in first:
                public, blocks = first[name]
                out.append((public, (f"{len(blocks)}*{shapes[blocks[0]][0]}",)))
            elif name not in inside:
                out.append((name, shape))
        return tuple(out)


def _stage_size(cell: Cell, stage: Stage, sizes: dict[str, str]) -> str:
    for name in stage.inputs:
        if name not in sizes:
            raise DeriveError(f"cell {cell.name!r}: stage {stage.name!r} reads {name!r} "
                              "before it is defined")
    if stage.kind is Kind.AFFINE:
        return stage.size
    found = {sizes[name] for name in stage.inputs}
    if len(found) != 1:
        raise DeriveError(f"cell {cell.name!r}: stage {stage.name!r} mixes sizes {sorted(found)}")
    return found.pop()
