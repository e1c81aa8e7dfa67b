"""Stages and cells: the forward computation written as plain, frozen data.

A `Stage` is the finest functional step of a cell: one affine map or one elementwise
function.  A `Cell` is an ordered tuple of stages plus the names of its per-step inputs,
its recurrent state and its per-step output.  Nothing here knows any calculus; the
calculus lives in `derive.rules`, the reverse sweep in `derive.derivation`.

Naming: inside one time step the previous value of a state variable `h` is called
`h_prev`; the stage named `h` defines its new value.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from derive.errors import DeriveError


class Kind(Enum):
    """The closed set of stage kinds; `derive.rules` defines each one."""

    AFFINE = "affine"    # sum of weight @ input terms, plus an optional bias
    SIGMOID = "sigmoid"  # logistic function, elementwise
    TANH = "tanh"        # hyperbolic tangent, elementwise
    MUL = "mul"          # elementwise (Hadamard) product of two values
    ADD = "add"          # elementwise sum of two values


@dataclass(frozen=True)
class Stage:
    """One functional stage: `name = kind(inputs)`.

    For AFFINE stages `weights[k]` multiplies `inputs[k]`, `bias` is added and `size`
    names the output length ("H").  Elementwise stages have no weights.
    """

    name: str
    kind: Kind
    inputs: tuple[str, ...]
    weights: tuple[str, ...] = ()
    bias: str | None = None
    size: str | None = None
    note: str = ""

    def __str__(self) -> str:
        if self.kind is Kind.AFFINE:
            terms = [f"{w} @ {x}" for w, x in zip(self.weights, self.inputs)]
            terms += [self.bias] if self.bias else []
            return f"{self.name} = {' + '.join(terms)}"
        return f"{self.name} = {self.kind.value}({', '.join(self.inputs)})"


def affine(name, inputs, weights, bias, size, note=""):
    """An affine stage `name = sum_k weights[k] @ inputs[k] + bias` of length `size`."""
    return Stage(name, Kind.AFFINE, tuple(inputs), tuple(weights), bias, size, note)


def elementwise(kind, name, *inputs, note=""):
    """An elementwise stage `name = kind(*inputs)`."""
    return Stage(name, kind, tuple(inputs), note=note)


@dataclass(frozen=True)
class Cell:
    """A recurrent cell: per-step inputs, recurrent state, output and ordered stages.

    `inputs` and `state` pair each name with its size symbol ("D", "H").
    """

    name: str
    description: str
    inputs: tuple[tuple[str, str], ...]
    state: tuple[tuple[str, str], ...]
    output: str
    stages: tuple[Stage, ...]
    notes: tuple[str, ...] = ()

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
        for stage in self.stages:
            sizes[stage.name] = _stage_size(self, stage, sizes)
        return sizes

    def params(self) -> tuple[tuple[str, tuple[str, ...]], ...]:
        """Parameters in their fixed public order, each with its shape in size symbols.

        Order: the weights of every affine stage's first input term, then of its
        second, ..., then the biases; within each group in stage order.
        """
        sizes = self.sizes()
        affines = [s for s in self.stages if s.kind is Kind.AFFINE]
        width = max((len(s.inputs) for s in affines), default=0)
        ordered = []
        for k in range(width):
            ordered += [(s.weights[k], (s.size, sizes[s.inputs[k]]))
                        for s in affines if k < len(s.inputs)]
        ordered += [(s.bias, (s.size,)) for s in affines if s.bias]
        return tuple(ordered)


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
