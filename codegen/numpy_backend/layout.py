"""Where the NumPy module stores a block's values gate by gate (a layout the records do not fix).

A block's buffers (its outputs Z_f_i_o, their gradient d_Z_f_i_o, its scratch) are stored per
step as (gates, B, size) instead of (B, gates * size) when its gates have one size, so every
gate (`f`, `d_i`) is one contiguous array: on the machine of the README's Speed section an
elementwise call with a column slice of a (B, 4H) buffer as operand or output took 2-2.6x as
long as the same call on a contiguous array (8x32: 0.97 vs 0.37 us, 32x128: 1.8 vs 0.9 us).
Only the products still see the stacked (B, gates * size) columns: a block's activation reads
them through `gate_view` (a reshape and a transpose, no copy), and so does the block's backward
step when it writes the pre-activations' gradients.

Contract: `gate_major(plan) -> GateMajor`; `GateMajor.of(name)` is (gates, size) for a block
buffer of this layout (any of its names: Z, Z_seq, d_Z, scratch_Z), else None.
"""
from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from codegen.schedule import Plan


@dataclass(frozen=True)
class GateMajor:
    blocks: tuple[tuple[str, int, str], ...] = ()   # (block buffer, gates, size of each)

    def of(self, name: str) -> tuple[int, str] | None:
        base = name.removesuffix("_seq")
        for prefix in ("d_", "scratch_"):
            base = base.removeprefix(prefix)
        return next(((n, size) for block, n, size in self.blocks if block == base), None)

    def gate(self, name: str, columns: str) -> int:
        """The gate whose columns these are (a slice covering exactly one gate)."""
        n, size = self.of(name)
        lo, hi = (sp.sympify(c) for c in columns.split(":"))
        index = sp.simplify(lo / sp.sympify(size))
        if not index.is_Integer or sp.simplify(hi - lo - sp.sympify(size)) != 0 or not 0 <= index < n:
            raise ValueError(f"columns {columns} of {name} are not one gate of size {size}")
        return int(index)


def gate_major(plan: Plan) -> GateMajor:
    """Every block of two or more gates of one size."""
    return GateMajor(tuple((b.out, len(b.outputs), b.sizes[0]) for g in plan.groups for b in g.blocks
                           if len(b.outputs) > 1 and len(set(b.sizes)) == 1))


def gate_view(code: str, gates: int, size: str) -> str:
    """Stacked columns (B, gates * size) seen gate by gate (gates, B, size), without a copy."""
    return f"{code}.reshape(B, {gates}, {size}).transpose(1, 0, 2)"


ROW_MAJOR = GateMajor()
