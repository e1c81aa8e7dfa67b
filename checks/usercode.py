"""Someone else's forward/backward code, imported and called behind one-line errors.

`load(target)` imports a `.py` file or a dotted module name — importing is the only
thing ever done with it besides calling its `forward` and `backward`.  `Runner` calls
those two functions on copies of our arrays and checks what comes back against the
generated module's contract; every way of breaking it (an exception inside the user's
code, a missing key, a wrong shape, NaN) becomes a `DeriveError` of one line naming the
function and the problem.  A gradient of exactly the transposed shape is let through, so
the comparison can say "transposed" instead of refusing it.
"""
from __future__ import annotations

import importlib
import importlib.util
import re
import sys
from pathlib import Path

import numpy as np

from derive.errors import DeriveError

DOTTED = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")


def load(target: str):
    """The module at a `.py` path or of a dotted name; any failure is a DeriveError."""
    if target.endswith(".py") or "/" in target or "\\" in target:
        path = Path(target)
        if not path.is_file():
            raise DeriveError(f"cannot import {target}: no such file")
        spec = importlib.util.spec_from_file_location(f"_compared_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        sys.path.insert(0, str(path.resolve().parent))   # so it can import its neighbours
        try:
            _guard(target, lambda: spec.loader.exec_module(module))
        finally:
            sys.path.pop(0)
        return module
    if not DOTTED.fullmatch(target):
        raise DeriveError(f"cannot import {target!r}: not a .py path or a dotted module name")
    sys.path.insert(0, str(Path.cwd()))
    try:
        return _guard(target, lambda: importlib.import_module(target))
    finally:
        sys.path.pop(0)


def _guard(target, action):
    try:
        return action()
    except (Exception, SystemExit) as err:  # the user's code: anything can happen
        raise DeriveError(f"cannot import {target}: {_describe(err)}") from None


def _describe(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0]}" if text else type(err).__name__


class Runner:
    """Calls `module.forward`/`backward` for one cell and validates the results.

    `shapes` maps every quantity (parameters, inputs, state) to its expected shape;
    results are float64 arrays keyed like the derived side (see `checks.compare`).
    """

    def __init__(self, module, label: str, cell):
        self.label, self.cell = label, cell
        names = ("forward", "backward")
        missing = [n for n in names if not callable(getattr(module, n, None))]
        if missing:
            raise DeriveError(f"{label}: has no function {missing[0]}() "
                              f"(the contract: see `lstm-derive compare --help`)")
        self.forward, self.backward = module.forward, module.backward

    def call(self, what, fn, *args):
        try:
            return fn(*args)
        except Exception as err:  # noqa: BLE001 - the user's code
            raise DeriveError(f"{self.label}: {what}() raised {_describe(err)}") from None

    def run(self, problem, shapes):
        """Forward and backward on one problem; a dict of named float64 arrays."""
        cell, p = self.cell, problem
        params, xs, dhs = _copy(p.params), _copy(p.xs), _copy(p.dhs)
        if not cell.recurrent:
            out = self.call("forward", self.forward, params, xs[0])
            y, cache = self.tuple("forward", out, 2)
            result = {"y": self.array("forward", "y", y, shapes["y"])}
            back = self.call("backward", self.backward, params, cache, dhs[0])
            grads, dx = self.tuple("backward", back, 2)
            result["x"] = self.array("backward", "dx", dx, shapes["x"])
        else:
            out = self.call("forward", self.forward, params, xs, _copy(p.state0))
            hs, stateT, cache = self.tuple("forward", out, 3)
            result = {"hs": self.array("forward", "hs", hs, shapes["hs"])}
            for s in cell.state_names:
                result[f"{s}_T"] = self.array("forward", f"stateT[{s!r}]",
                                              self.key("forward", "stateT", stateT, s), shapes[f"{s}_T"])
            back = self.call("backward", self.backward, params, cache, dhs, _copy(p.dstateT))
            grads, dxs, dstate0 = self.tuple("backward", back, 3)
            result["xs"] = self.array("backward", "dxs", dxs, shapes["xs"])
            for s in cell.state_names:
                result[f"{s}_0"] = self.array("backward", f"dstate0[{s!r}]",
                                              self.key("backward", "dstate0", dstate0, s), shapes[f"{s}_0"])
        for name in p.params:
            value = self.key("backward", "grads", grads, name)
            result[name] = self.array("backward", f"grads[{name!r}]", value, shapes[name], transposable=True)
        return result

    def tuple(self, what, value, n):
        if not isinstance(value, (tuple, list)) or len(value) != n:
            got = f"{len(value)} values" if isinstance(value, (tuple, list)) else type(value).__name__
            raise DeriveError(f"{self.label}: {what}() must return {n} values, returned {got}")
        return value

    def key(self, what, name, mapping, key):
        try:
            return mapping[key]
        except (KeyError, TypeError, IndexError):
            raise DeriveError(f"{self.label}: {what}() returned {name} without {key!r}") from None

    def array(self, what, name, value, shape, transposable=False):
        try:
            value = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            raise DeriveError(f"{self.label}: {what}() returned {name} that is not a float array") from None
        ok = value.shape == tuple(shape) or (transposable and value.shape == tuple(shape)[::-1])
        if not ok:
            raise DeriveError(f"{self.label}: {what}() returned {name} of shape {value.shape}, "
                              f"expected {tuple(shape)}")
        if not np.all(np.isfinite(value)):
            bad = "NaN" if np.isnan(value).any() else "inf"
            raise DeriveError(f"{self.label}: {what}() returned {bad} in {name}")
        return value


def _copy(value):
    """A private copy, so user code cannot change our arrays (or we theirs)."""
    if isinstance(value, dict):
        return {k: np.array(v) for k, v in value.items()}
    return np.array(value) if isinstance(value, np.ndarray) else value
