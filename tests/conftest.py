"""Shared fixtures: the committed generated module and the hand-written reference."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
GENERATED = ROOT / "generated"
sys.path.insert(0, str(Path(__file__).resolve().parent))


def load_file(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def lstm():
    return load_file(GENERATED / "lstm.py", "generated_lstm")


def dim(size: str, sizes: dict) -> int:
    """A size symbol's value in `sizes`; "4*H" (a packed parameter's rows) is 4 times H."""
    count, _, symbol = size.rpartition("*")
    return int(count or 1) * sizes[symbol]


def generated(name: str):
    """The committed generated module of a cell."""
    return load_file(GENERATED / f"{name}.py", f"generated_{name}")


@pytest.fixture(scope="session")
def reference():
    import reference_lstm
    return reference_lstm


def random_problem(module, T, B, D, H, seed=0, dtype=np.float64):
    """Parameters, inputs, state and upstream gradients for one run."""
    rng = np.random.default_rng(seed)
    params = module.init_params(D, H, seed=seed + 1, dtype=dtype)
    for name in getattr(module, "INITIAL", {}):   # a layer norm's gains start at 1: made generic
        params[name] = params[name] + rng.uniform(-0.5, 0.5, size=params[name].shape).astype(dtype)
    xs = rng.normal(size=(T, B, D)).astype(dtype)
    state0 = {s: rng.normal(size=(B, H)).astype(dtype) for s in module.STATE}
    dhs = rng.normal(size=(T, B, H)).astype(dtype)
    dstateT = {s: rng.normal(size=(B, H)).astype(dtype) for s in module.STATE}
    return params, xs, state0, dhs, dstateT
