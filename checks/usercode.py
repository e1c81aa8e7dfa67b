"""Someone else's forward/backward code, imported and called behind one-line errors.

`load(target)` imports a `.py` file or a dotted module name — importing is the only
thing ever done with it besides calling its `forward` and `backward`.  `Runner` calls
those two functions on copies of our arrays and checks what comes back against the
generated module's contract; every way of breaking it (an exception inside the user's
code, `sys.exit`, a missing key, a wrong shape, NaN) becomes a `DeriveError` of one line
naming the function and the problem (for an exception, also the
innermost FILE:LINE of the user's file it passed through).  A gradient of exactly the transposed shape is let
through, so the comparison can say "transposed" instead of refusing it.  Inputs the code
changes in place are noted in `Runner.warnings` (a caller's arrays would be changed).

The user's code runs in a child process (`checks.runner` uses this module there); only
our own PyTorch reference (`checks.torchref`) is run by a `Runner` in this process.
"""
from __future__ import annotations

import importlib
import importlib.util
import re
import sys
import traceback
from pathlib import Path

import numpy as np

from checks.adapt import Adapted
from checks.layout import read
from derive.errors import DeriveError

DOTTED = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")


def load(target: str):
    """The module at a `.py` path or of a dotted name; any failure is a DeriveError."""
    if target.endswith((".pyc", ".pyo")) or (not target.endswith(".py") and Path(target).is_file()):
        raise DeriveError(f"cannot import {target}: not a .py source file (give the .py file "
                          "or a dotted module name)")
    if target.endswith(".py") or "/" in target or "\\" in target:
        path = Path(target)
        if not path.is_file():
            raise DeriveError(f"cannot import {target}: {'not a file' if path.exists() else 'no such file'}")
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
    except BaseException as err:  # noqa: BLE001 - the user's code: anything can happen
        raise DeriveError(f"cannot import {target}: {_describe(err)}") from None


def _describe(err: BaseException) -> str:
    if isinstance(err, SystemExit):
        return f"called sys.exit({err.code!r})"
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0][:200]}" if text else type(err).__name__


class Runner:
    """Calls `module.forward`/`backward` for one cell and validates the results.

    `cell` needs `recurrent` and `state_names`; `shapes` maps every quantity (parameters,
    inputs, state) to its expected shape; results are float64 arrays keyed like the
    derived side (see `checks.compare`); `dtypes` collects the float dtypes the code
    returned them in (they set the default tolerances).
    """

    def __init__(self, module, label: str, cell, layout: str | None = None):
        self.label, self.cell = label, cell
        self.warnings: list[str] = []
        self.dtypes: set[str] = set()   # the float dtypes of everything the code returned
        self.file = getattr(module, "__file__", None)
        self.contract, self.unchecked = None, set()
        if not cell.recurrent and getattr(module, "LAYOUT", None) is not None:
            raise DeriveError(f"{label}: LAYOUT describes recurrent code; this network has no state")
        chosen = read(getattr(module, "LAYOUT", None), layout) if cell.recurrent else None
        if chosen is not None:   # another style: our contract through an adapter
            adapted = Adapted(module, chosen, cell, label, self.call)
            self.forward, self.backward, self.contract = adapted.forward, adapted.backward, adapted.contract
            self.unchecked = {row for row, _ in self.contract.unchecked}
            return
        names = ("forward", "backward")
        missing = [n for n in names if not callable(getattr(module, n, None))]
        if missing:
            raise DeriveError(f"{label}: has no function {missing[0]}() "
                              f"(the contract: see `lstm-derive compare --help`)")
        self.forward, self.backward = module.forward, module.backward

    def where(self, err: BaseException) -> str:
        """The text ' (at FILE:LINE)' naming the innermost frame of the traceback in the
        user's file (else the innermost one outside this module), or '' if there is none."""
        frames = [f for f in traceback.extract_tb(err.__traceback__)
                  if Path(f.filename).resolve() != Path(__file__).resolve()]
        if self.file:
            mine = Path(self.file).resolve()
            frames = [f for f in frames if Path(f.filename).resolve() == mine] or frames
        return f" (at {frames[-1].filename}:{frames[-1].lineno})" if frames else ""

    def call(self, what, fn, *args, inputs=()):
        """fn(*args); `inputs` are (name, ours, the copy handed over) to watch for changes."""
        try:
            out = fn(*args)
        except DeriveError:   # raised by an adapter around the user's functions: already one line
            raise
        except BaseException as err:  # noqa: BLE001 - the user's code, sys.exit included
            raise DeriveError(f"{self.label}: {what}() {_raised(err)}{self.where(err)}") from None
        for name, ours, theirs in inputs:
            for key in _changed(ours, theirs):
                warning = f"{self.label}: {what}() changed its input {name}{key} in place"
                if warning not in self.warnings:
                    self.warnings.append(warning)
        return out

    def run(self, problem, shapes):
        """Forward and backward on one problem; a dict of named float64 arrays."""
        p = problem
        params = _copy(p.params)
        result, grads = (self._recurrent if self.cell.recurrent else self._network)(p, params, shapes)
        for name in p.params:
            value = self.key("backward", "grads", grads, name)
            result[name] = self.array("backward", f"grads[{name!r}]", value, shapes[name], transposable=True)
        return result

    def _network(self, p, params, shapes):
        x, dy = _copy(p.xs[0]), _copy(p.dhs[0])
        watched = [("params", p.params, params), ("x", p.xs[0], x)]
        y, cache = self.tuple("forward", self.call("forward", self.forward, params, x, inputs=watched), 2)
        result = {"y": self.array("forward", "y", y, shapes["y"])}
        back = self.call("backward", self.backward, params, cache, dy,
                         inputs=[("params", p.params, params), ("dy", p.dhs[0], dy)])
        grads, dx = self.tuple("backward", back, 2)
        result["x"] = self.array("backward", "dx", dx, shapes["x"])
        return result, grads

    def _recurrent(self, p, params, shapes):
        xs, state0, dhs, dstateT = _copy(p.xs), _copy(p.state0), _copy(p.dhs), _copy(p.dstateT)
        watched = [("params", p.params, params), ("xs", p.xs, xs), ("state0", p.state0, state0)]
        out = self.call("forward", self.forward, params, xs, state0, inputs=watched)
        hs, stateT, cache = self.tuple("forward", out, 3)
        result = {} if "hs" in self.unchecked else {"hs": self.array("forward", "hs", hs, shapes["hs"])}
        for s in self.cell.state_names:
            if f"{s}_T" not in self.unchecked:
                result[f"{s}_T"] = self.array("forward", f"stateT[{s!r}]",
                                              self.key("forward", "stateT", stateT, s), shapes[f"{s}_T"])
        watched = [("params", p.params, params), ("dhs", p.dhs, dhs), ("dstateT", p.dstateT, dstateT)]
        back = self.call("backward", self.backward, params, cache, dhs, dstateT, inputs=watched)
        grads, dxs, dstate0 = self.tuple("backward", back, 3)
        if "xs" not in self.unchecked:
            result["xs"] = self.array("backward", "dxs", dxs, shapes["xs"])
        for s in self.cell.state_names:
            if f"{s}_0" not in self.unchecked:
                result[f"{s}_0"] = self.array("backward", f"dstate0[{s!r}]",
                                              self.key("backward", "dstate0", dstate0, s), shapes[f"{s}_0"])
        return result, grads

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
        value, dtype = _floats(value)
        if dtype is not None:
            self.dtypes.add(dtype)
        if isinstance(value, str):   # complex values would lose their imaginary part without a word
            raise DeriveError(f"{self.label}: {what}() returned {name} that is {value}")
        ok = value.shape == tuple(shape) or (transposable and value.shape == tuple(shape)[::-1])
        if not ok:
            raise DeriveError(f"{self.label}: {what}() returned {name} of shape {value.shape}, "
                              f"expected {tuple(shape)}")
        if not np.all(np.isfinite(value)):
            bad = "NaN" if np.isnan(value).any() else "inf"
            raise DeriveError(f"{self.label}: {what}() returned {bad} in {name}")
        return value


def _floats(value):
    """(`value` as a float64 array, the name of its own float dtype or None), or (what it
    is instead, None)."""
    try:
        raw = np.asarray(value)
        if np.iscomplexobj(raw):
            return "complex numbers", None
        if raw.dtype.kind in "SUVM":
            return "not a float array", None
        return raw.astype(np.float64), (raw.dtype.name if raw.dtype.kind == "f" else None)
    except (TypeError, ValueError, OverflowError):
        return "not a float array", None


def _raised(err: BaseException) -> str:
    if isinstance(err, SystemExit):
        return f"called sys.exit({err.code!r})"
    return f"raised {_describe(err)}"


def _changed(ours, theirs) -> list[str]:
    """Where the copy handed to the user's code no longer equals ours ("" for an array)."""
    if isinstance(ours, dict):
        if not isinstance(theirs, dict):
            return [""]
        return [f"[{k!r}]" for k in ours if _changed(ours[k], theirs.get(k))]
    same = isinstance(theirs, np.ndarray) and theirs.shape == np.shape(ours) and \
        np.array_equal(theirs, ours, equal_nan=True)
    return [] if same else [""]


def _copy(value):
    """A private copy, so user code cannot change our arrays (or we theirs)."""
    if isinstance(value, dict):
        return {k: np.array(v) for k, v in value.items()}
    return np.array(value) if isinstance(value, np.ndarray) else value
