"""Worked numerical examples: a cell's generated NumPy module run on a tiny published problem.

`lstm_example(source)` runs the LSTM module text on Gomez's setup ("Backpropogating an LSTM:
A Numerical Example", 2016: one unit, two inputs, two steps, loss 1/2 (h_t - y_t)^2) and
`mlp_example(source)` the MLP module on Mazur's ("A Step by Step Backpropagation Example",
2015: a 2-2-2 sigmoid network, squared error).  Every number is computed by the generated
code (never typed in); only the problems are data.  The result is plain numbers for the
document (rendering them as a section is still to do).
"""
from __future__ import annotations

import numpy as np

from checks.gradcheck import load_module

# Gomez 2016; his candidate "a" is our g.
GOMEZ = dict(
    params=dict(W_g=[[0.45, 0.25]], U_g=[[0.15]], b_g=[0.2],
                W_i=[[0.95, 0.8]], U_i=[[0.8]], b_i=[0.65],
                W_f=[[0.7, 0.45]], U_f=[[0.1]], b_f=[0.15],
                W_o=[[0.6, 0.4]], U_o=[[0.25]], b_o=[0.1]),
    xs=[[1.0, 2.0], [0.5, 3.0]], ys=[0.5, 1.25])

# Mazur 2015: w1..w4 into the hidden layer, w5..w8 into the outputs, one bias per layer.
MAZUR = dict(params=dict(W1=[[0.15, 0.20], [0.25, 0.30]], b1=[0.35, 0.35],
                         W2=[[0.40, 0.45], [0.50, 0.55]], b2=[0.60, 0.60]),
             x=[0.05, 0.10], target=[0.01, 0.99])


def _arrays(params):
    return {name: np.array(value, dtype=float) for name, value in params.items()}


def lstm_example(source: str) -> dict:
    """Outputs, final state and gradients of Gomez's problem, by the module `source`."""
    module = load_module(source, "lstm_derive_worked")
    params = _arrays(GOMEZ["params"])
    xs = np.array(GOMEZ["xs"])[:, None, :]                # (T, B=1, D)
    ys = np.array(GOMEZ["ys"])[:, None, None]
    hs, state, cache = module.forward(params, xs)
    dhs = hs - ys                                         # dl_t/dh_t of 1/2 (h_t - y_t)^2
    grads, dxs, dstate0 = module.backward(params, cache, dhs)
    return dict(hs=hs[:, 0, 0], state=state, dhs=dhs[:, 0, 0], grads=grads, dxs=dxs[:, 0])


def mlp_example(source: str) -> dict:
    """Outputs, total error and gradients of Mazur's problem, by the module `source`."""
    module = load_module(source, "lstm_derive_worked")
    params = _arrays(MAZUR["params"])
    x, target = np.array([MAZUR["x"]]), np.array([MAZUR["target"]])
    y, cache = module.forward(params, x)
    error, dy = module.loss(y, target)
    grads, dx = module.backward(params, cache, dy)
    return dict(y=y[0], error=float(error), grads=grads)
