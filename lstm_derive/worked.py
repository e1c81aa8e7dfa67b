"""Worked numerical examples: a cell's generated module run on a tiny problem, every stage shown.

`worked_example(entry, derivation, source)` returns the `Worked` numbers a document prints:
the LSTM on Gomez's problem ("Backpropogating an LSTM: A Numerical Example", 2016: one unit,
two inputs, two steps, loss 1/2 (h_t - y_t)^2), the MLP on Mazur's ("A Step by Step
Backpropagation Example", 2015: a 2-2-2 sigmoid network, squared error), and every other cell
on the same kind of problem at H = 1 (every other size 1), D = 2, T = 2: Gomez's inputs and
targets, parameters drawn by the module's `init_params` (seed 0) and rounded to two decimals
so a student can redo the arithmetic.  The outputs, losses and gradients are the generated
module's; the value of every stage and of every backward equation at every step is read off
the derivation's own evaluator (`derive.interpret.run`), which is checked here to give the
module's outputs and gradients to 1e-10 — a build fails rather than print numbers that
disagree.  `lstm_example` and `mlp_example` give the module's raw results (tests compare
them with the published numbers).  Only the problems are data here.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

from catalogue.entry import Entry
from checks.gradcheck import load_module
from codegen.document import Published, Row, Worked
from derive.derivation import Derivation
from derive.errors import DeriveError
from derive.interpret import run

# Gomez 2016; his candidate "a" is our g.
GOMEZ = dict(
    params=dict(W_g=[[0.45, 0.25]], U_g=[[0.15]], b_g=[0.2],
                W_i=[[0.95, 0.8]], U_i=[[0.8]], b_i=[0.65],
                W_f=[[0.7, 0.45]], U_f=[[0.1]], b_f=[0.15],
                W_o=[[0.6, 0.4]], U_o=[[0.25]], b_o=[0.1]),
    xs=[[1.0, 2.0], [0.5, 3.0]], ys=[0.5, 1.25],
    # The states and outputs his post prints, as printed (step 0 is his t = 0, our t = 1).  The
    # post renders them as images; these are as transcribed, with his weights and inputs, in the
    # test file of a public Go re-implementation of the post (gorgonia, "c0 = 0.78572,
    # h0 = 0.53631, c1 = 1.5176, h1 = 0.77197"), found with the search tool on 2026-11-25.
    printed=(("c", 0, "0.78572"), ("h", 0, "0.53631"), ("c", 1, "1.5176"), ("h", 1, "0.77197")))

# Mazur 2015: w1..w4 into the hidden layer, w5..w8 into the outputs, one bias per layer.
MAZUR = dict(params=dict(W1=[[0.15, 0.20], [0.25, 0.30]], b1=[0.35, 0.35],
                         W2=[[0.40, 0.45], [0.50, 0.55]], b2=[0.60, 0.60]),
             x=[0.05, 0.10], target=[0.01, 0.99], label=1)

SEED = 0          # init_params seed of the examples that are not published ones
AGREE = 1e-10     # the evaluator and the generated module must agree this closely


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


def worked_example(entry: Entry, derivation: Derivation, source: str) -> Worked:
    """The worked example of `entry`'s document, run with its generated module `source`."""
    module = load_module(source, f"lstm_derive_worked_{entry.name}")
    if entry.cell.recurrent:
        return _recurrent(entry, derivation, module)
    return _feedforward(entry, derivation, module)


def _problem_params(entry, module, problem):
    if problem in ("gomez", "mazur"):
        return _arrays((GOMEZ if problem == "gomez" else MAZUR)["params"])
    sizes = {arg: (2 if symbol == "D" else 1) for symbol, arg in entry.size_args}
    drawn = module.init_params(**sizes, seed=SEED)
    return {name: np.round(value, 2) for name, value in drawn.items()}


def _recurrent(entry, derivation, module) -> Worked:
    cell = derivation.cell
    problem = "gomez" if entry.name == "lstm" else "small"
    params = _problem_params(entry, module, problem)
    xs = np.array(GOMEZ["xs"])[:, None, :]
    ys = np.array(GOMEZ["ys"])[:, None, None]               # one output unit in every example
    hs, _, cache = module.forward(params, xs)
    dhs = hs - ys
    loss = float(0.5 * np.sum(dhs ** 2))
    grads, dxs, _ = module.backward(params, cache, dhs)
    params, grads = cell.unpack(params), cell.unpack(grads)   # as the stages read them
    zeros = {s: np.zeros((1, 1)) for s in cell.state_names}   # every state has one unit
    ehs, _, egrads, edxs, _, trace = run(derivation, params, xs, zeros, dhs, zeros)
    _agree(entry, [(hs, ehs), (dxs, edxs)] + [(grads[p], egrads[p]) for p in grads])
    worked = _worked(problem, derivation, params, trace, [y.ravel() for y in ys],
                     [d.ravel() for d in dhs], grads, loss)
    if problem == "gomez":
        worked = dataclasses.replace(worked, published=published(trace))
    return worked


def agrees(ours: float, printed: str) -> bool:
    """Equal to the digits printed: within one unit of the last printed place (he truncates
    some numbers and rounds others)."""
    places = len(printed.split(".")[1])
    return abs(ours - float(printed)) < 10.0 ** -places


def published(trace) -> tuple[Published, ...]:
    """Gomez's printed states and outputs beside ours (`trace`: the evaluator's values per
    step).  An output he prints that is not ours to his digits is recomputed the way a hand
    computation does it, from his rounded state: h = o tanh(c), with our o and his c."""
    his = {(name, step): float(printed) for name, step, printed in GOMEZ["printed"]}
    rows = []
    for name, step, printed in GOMEZ["printed"]:
        ours = float(np.ravel(trace[step][name])[0])
        close = agrees(ours, printed)
        rounded = (float(np.ravel(trace[step]["o"])[0]) * math.tanh(his[("c", step)])
                   if name == "h" and not close else None)
        rows.append(Published(name, step, printed, ours, close, rounded))
    return tuple(rows)


def _feedforward(entry, derivation, module) -> Worked:
    cell = derivation.cell
    params = _problem_params(entry, module, "mazur")
    x = np.array([MAZUR["x"]])
    target = (np.array([MAZUR["target"]]) if entry.name == "mlp"
              else np.array([MAZUR["label"]]))
    y, cache = module.forward(params, x)
    loss, dy = module.loss(y, target)
    grads, dx = module.backward(params, cache, dy)
    ey, _, egrads, edxs, _, trace = run(derivation, params, x[None], {}, dy[None], {})
    _agree(entry, [(y, ey[0])] + [(grads[p], egrads[p]) for p in grads])
    shown_target = target.ravel() if entry.name == "mlp" else np.eye(y.shape[1])[MAZUR["label"]]
    return _worked("mazur" if entry.name == "mlp" else "mazur_label", derivation, params, trace,
                   [shown_target], [dy.ravel()], grads, float(loss))


def _agree(entry, pairs):
    worst = max(float(np.max(np.abs(np.asarray(a) - np.asarray(b)), initial=0.0)) for a, b in pairs)
    if worst > AGREE:
        raise DeriveError(f"worked example of {entry.name}: the generated module and the "
                          f"derivation differ by {worst:.3g}")


def _worked(problem, derivation, params, trace, targets, direct, grads, loss) -> Worked:
    cell = derivation.cell

    def per_step(name):
        return tuple(_numbers(values[name]) for values in trace)

    given = [cell.input_names[0]] + [f"{s}_prev" for s in cell.state_names]
    return Worked(
        problem=problem, seed=None if problem in ("gomez", "mazur", "mazur_label") else SEED,
        params=tuple((name, _numbers(value)) for name, value in params.items()),
        shapes=tuple((name, tuple(np.shape(value))) for name, value in params.items()),
        given=tuple(Row("", name, per_step(name)) for name in given),
        targets=tuple(_numbers(t) for t in targets),
        direct=tuple(_numbers(d) for d in direct),
        forward=tuple(Row(eq.label, eq.stage.name, per_step(eq.stage.name))
                      for eq in derivation.forward),
        backward=tuple(Row(adj.label, adj.target, per_step(f"d_{adj.target}"))
                       for adj in derivation.adjoints),
        grads=tuple(Row(g.label, g.param, (_numbers(grads[g.param]),))
                    for g in derivation.param_grads),
        loss=loss)


def _numbers(array) -> tuple[float, ...]:
    return tuple(float(v) for v in np.ravel(array))
