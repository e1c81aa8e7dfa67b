"""Output layers that put a loss on a recurrent cell's outputs, as small feed-forward cells.

A recurrent cell's backward pass starts from dL/dh_t.  `output_heads(cell)` returns the two
usual ways that gradient arises, each an ordinary `Cell` that reads the cell's output and
is differentiated by `derive` like any other (nothing here is calculus, and no prose:
the document that shows a head chooses its words by the head's loss):

- a softmax classifier: z_t = V h_t + b_y, y_t = softmax(z_t), cross-entropy loss;
- a linear regression output: y_t = V h_t + b_y, squared-error loss.

A head's sizes are the output's size symbol and "K", the output layer's width.
"""
from __future__ import annotations

from derive.stages import Cell, Kind, Loss, affine, elementwise


def output_heads(cell: Cell) -> tuple[Cell, Cell]:
    """(softmax + cross-entropy head, squared-error head) reading `cell.output`."""
    out = cell.output
    size = cell.sizes()[out]
    softmax = Cell(
        name=f"{cell.name}_softmax_head",
        inputs=((out, size),), state=(), output="y",
        stages=(affine("z", (out,), ("V",), "b_y", "K", note="logits"),
                elementwise(Kind.SOFTMAX, "y", "z", note="class probabilities")),
        loss=Loss.CROSS_ENTROPY)
    squared = Cell(
        name=f"{cell.name}_squared_head",
        inputs=((out, size),), state=(), output="y",
        stages=(affine("y", (out,), ("V",), "b_y", "K", note="prediction"),),
        loss=Loss.SQUARED_ERROR)
    return softmax, squared
