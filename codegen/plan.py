"""The schedule of the generated NumPy code, read off the derivation's stage graph.

Affine stages that read the same inputs form a *group*: their weights are stacked so the
group costs one GEMM per input instead of one per stage, and its pre-activations live
side by side in one buffer.  A group term that reads a sequence input (x) does not
depend on the recurrence, so it is *hoisted*: one GEMM over all time steps before the
loop, and its weight gradient and input gradient one GEMM each after the backward loop.
Nothing here is mathematics: the stacked products equal the sums of the per-stage terms.
"""
from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from derive.derivation import Derivation
from derive.stages import Kind, Stage


@dataclass(frozen=True)
class Group:
    """Affine stages sharing their input tuple, laid out side by side."""

    index: int
    stages: tuple[Stage, ...]
    inputs: tuple[str, ...]
    hoisted: tuple[str, ...]    # inputs whose term is computed for all steps at once

    @property
    def tag(self) -> str:
        return "" if self.index == 0 else str(self.index)

    def weight(self, inp: str) -> str:
        return f"Wcat{self.tag}_{inp}"

    @property
    def bias(self) -> str:
        return f"bcat{self.tag}"

    @property
    def buffer(self) -> str:
        return f"A{self.tag}"

    def weights_of(self, inp: str) -> list[str]:
        return [s.weights[s.inputs.index(inp)] for s in self.stages]

    @property
    def biases(self) -> list[str]:
        return [s.bias for s in self.stages if s.bias]

    def slices(self) -> dict[str, str]:
        """Column slice of every stage's output inside the group buffer, as code."""
        out, offset = {}, sp.Integer(0)
        for s in self.stages:
            end = offset + sp.Symbol(s.size)
            out[s.name] = f"{_code(offset)}:{_code(end)}"
            offset = end
        return out

    @property
    def width(self) -> str:
        return _code(sum((sp.Symbol(s.size) for s in self.stages), sp.Integer(0)))


def _code(expr) -> str:
    return str(expr).replace(" ", "")


def groups(derivation: Derivation) -> tuple[Group, ...]:
    cell = derivation.cell
    sequence = set(cell.input_names)
    buckets: dict[tuple, list[Stage]] = {}
    for stage in cell.stages:
        if stage.kind is Kind.AFFINE:
            key = (stage.inputs, stage.size, bool(stage.bias))
            buckets.setdefault(key, []).append(stage)
    return tuple(Group(n, tuple(stages), key[0], tuple(i for i in key[0] if i in sequence))
                 for n, (key, stages) in enumerate(buckets.items()))


def group_of(groups_: tuple[Group, ...], stage_name: str) -> Group | None:
    return next((g for g in groups_ if any(s.name == stage_name for s in g.stages)), None)
