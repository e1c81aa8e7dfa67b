"""How the PyTorch backend spells operation records (`codegen.records`) as lines of Python.

Contract: `spell(records) -> list[str]`.  Buffers are new tensors on the device and of the
dtype of `xs` (`xs.new_empty`), so the code is device- and dtype-agnostic; an elementwise
expression stored into a buffer is one torch expression written with `t[...] = value`;
products use `torch.matmul(..., out=...)`.  Views, sums and copies are spelled as in the
NumPy backend (Python slicing is the same).  An equation's label is a comment on its line.
"""
from __future__ import annotations

import sympy as sp

from codegen.numpy_backend.spell import SPELLING as NUMPY_SPELLING, ref_code
from codegen.records import Assign, Buffer, Ref, Reduce, Stack, Zeros
from codegen.torch_backend.printer import expr_code


def _comment(label: str) -> str:
    return f"  # {label}" if label else ""


def _buffer(r: Buffer, module):
    return [f"{r.name} = xs.new_empty(({', '.join(r.shape)}))"]


def _zeros(r: Zeros, module):
    return [f"{r.name} = xs.new_zeros(({', '.join(r.shape)})){_comment(r.label)}"]


def _assign(r: Assign, module):
    expr = r.expr.xreplace({sp.Symbol(name, real=True): sp.Symbol(ref_code(ref), real=True)
                            for name, ref in r.operands})
    if isinstance(r.target, str):
        return [f"{r.target} = {expr_code(expr)}{_comment(r.label)}"]
    target = ref_code(r.target)
    target = target if target.endswith("]") else f"{target}[...]"
    return [f"{target} = {expr_code(expr)}{_comment(r.label)}"]


def _reduce(r: Reduce, module):
    source = ref_code(r.source) if isinstance(r.source, Ref) else f"({expr_code(r.source)})"
    return [f"{r.target} += {source}.sum(dim=0){_comment(r.label)}"]


SPELLING = {**NUMPY_SPELLING, Buffer: _buffer, Zeros: _zeros, Assign: _assign, Reduce: _reduce}


def spell(records) -> list[str]:
    return [line for r in records for line in SPELLING[type(r)](r, "torch")]


def stack_line(s: Stack) -> str:
    parts = ", ".join(f'params["{name}"]' if name else f"xs.new_zeros({size})"
                      for name, size in s.parts)
    return f"{s.name} = torch.cat([{parts}])"
