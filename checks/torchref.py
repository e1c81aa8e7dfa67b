"""PyTorch autograd dressed as a hand-written module, for `compare CELL --against torch`.

`torch_module(cell, layout)` returns an object with the generated module's `forward`/`backward`
contract whose gradients come from PyTorch autograd (float64) on the matching one-layer
`torch.nn` module.  Parameters are moved with the cell's `TorchLayout` (PyTorch stacks
the gates in its own order; a parameter named in both biases is exported in the first
and as zeros in the second, and its gradient is read from the first).
"""
from __future__ import annotations

import ast
import numpy as np

from catalogue.cells import CELLS
from derive.errors import DeriveError


def torch_module(cell, layout):
    """A forward/backward pair backed by PyTorch autograd, or a DeriveError saying why not;
    `layout` is the cell's `TorchLayout` from the catalogue (None: PyTorch has no such cell)."""
    if layout is None:
        have = ", ".join(name for name, entry in CELLS.items() if entry.torch is not None)
        raise DeriveError(f"PyTorch has no cell like {cell.name!r}; --against torch works for {have}")
    try:
        import torch
    except ImportError:
        raise DeriveError("--against torch needs PyTorch, which is not installed "
                          "(pip install torch)") from None
    return _TorchCell(cell, layout, torch)


class _TorchCell:
    """`forward`/`backward` with the generated module's contract; autograd does the work."""

    def __init__(self, cell, layout, torch):
        self.cell, self.torch, self.layout = cell, torch, layout

    def net(self, params):
        sizes = _sizes(self.cell, params)
        options = dict(input_size=sizes["D"], hidden_size=sizes["H"], **_options(self.layout.options, sizes))
        net = getattr(self.torch.nn, self.layout.module)(**options).double()
        net.load_state_dict({key: self.torch.from_numpy(_stack(params, names, self.layout, key))
                             for key, names in self.layout.keys})
        return net

    def run(self, params, xs, state0):
        tensor, states = self.torch.from_numpy, self.cell.state_names
        net = self.net(params)
        x = tensor(np.asarray(xs, dtype=np.float64)).requires_grad_()
        s0 = {s: tensor(np.asarray(state0[s], dtype=np.float64))[None].requires_grad_() for s in states}
        initial = tuple(s0[s] for s in states)
        out, final = net(x, initial if len(initial) > 1 else initial[0])
        final = final if isinstance(final, tuple) else (final,)
        return net, x, s0, out, dict(zip(states, final))

    def forward(self, params, xs, state0=None):
        _, _, _, out, final = self.run(params, xs, state0)
        stateT = {s: v[0].detach().numpy() for s, v in final.items()}
        return out.detach().numpy(), stateT, (params, xs, state0)

    def backward(self, params, cache, dhs, dstateT=None):
        net, x, s0, out, final = self.run(*cache)
        loss = (out * self.torch.from_numpy(np.asarray(dhs))).sum()
        for s in self.cell.state_names:
            loss = loss + (final[s][0] * self.torch.from_numpy(np.asarray(dstateT[s]))).sum()
        loss.backward()
        dstate0 = {s: v.grad[0].numpy() for s, v in s0.items()}
        return _grads(dict(net.named_parameters()), self.layout), x.grad.numpy(), dstate0


def _sizes(cell, params):
    sizes = {}
    for name, shape in cell.params():
        sizes.update(zip(shape, np.shape(params[name])))
    return sizes


def _options(source, sizes):
    """Keyword options like "proj_size=P" or "nonlinearity='tanh'", read without eval."""
    if not source:
        return {}
    call = ast.parse(f"f({source})", mode="eval").body
    options = {}
    for keyword in call.keywords:
        value = keyword.value
        options[keyword.arg] = value.value if isinstance(value, ast.Constant) else sizes[value.id]
    return options


def _first_key(layout, name):
    return next(key for key, names in layout.keys if name in names)


def _stack(params, names, layout, key):
    blocks = [np.asarray(params[n], dtype=np.float64) if _first_key(layout, n) == key
              else np.zeros_like(params[n], dtype=np.float64) for n in names]
    return np.ascontiguousarray(np.concatenate(blocks))


def _grads(named, layout):
    grads = {}
    for key, names in layout.keys:
        blocks = np.split(named[key].grad.numpy(), len(names))
        for name, block in zip(names, blocks):
            if _first_key(layout, name) == key:
                grads[name] = block
    return grads
