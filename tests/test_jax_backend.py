"""generated/jax/<cell>.py: the derived backward inside JAX (float64, small shapes).

Every recurrent cell (built in and examples/): `jax.grad` through the module's custom_vjp
equals `jax.grad` of the same cell written plainly in jax.numpy (`plain_forward`, an
interpreter of the stage list under `lax.scan`, differentiated by JAX itself); the derived
halves equal our NumPy module; jit gives the same numbers.  Skipped without jax, a failure
when CI=true.
"""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import sympy as sp

from conftest import GENERATED, ROOT, dim, generated, load_file
from catalogue.cells import CELLS
from catalogue.spec import load_spec
from derive.derivation import derive, symbol
from derive.stages import Kind

if os.environ.get("CI") == "true":
    import jax
else:
    jax = pytest.importorskip("jax")
jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp  # noqa: E402

EXAMPLES = ROOT / "examples"
BUILT_IN = [name for name, entry in CELLS.items() if entry.cell.recurrent]
SPECS = sorted(p.stem for p in EXAMPLES.glob("*.toml"))
SIZES = {"D": 3, "H": 4, "P": 2}
T, B = 3, 2


def entry_of(name):
    return CELLS[name] if name in CELLS else load_spec(EXAMPLES / f"{name}.toml")[0]


def jax_module(name):
    folder = GENERATED if name in CELLS else EXAMPLES
    return load_file(folder / "jax" / f"{name}.py", f"generated_jax_{name}")


def plain_forward(derivation):
    """The cell written plainly: its stages in order, one step under lax.scan, no custom rules."""
    cell = derivation.cell
    row_mean = {"RowMean": lambda e: jnp.mean(e, axis=-1, keepdims=True)}   # a mean stage's
    functions = {eq.stage.name: sp.lambdify(sorted(eq.numeric.free_symbols, key=str), eq.numeric,
                                            [row_mean, "jax"])
                 for eq in derivation.forward if eq.stage.kind not in (Kind.AFFINE, Kind.SOFTMAX)}

    def stage(eq, values, params):
        s = eq.stage
        if s.kind is Kind.AFFINE:
            out = sum(values[x] @ params[w].T for w, x in zip(s.weights, s.inputs))
            return out + params[s.bias] if s.bias else out
        if s.kind is Kind.SOFTMAX:
            return jax.nn.softmax(values[s.inputs[0]], axis=-1)
        names = sorted(eq.numeric.free_symbols, key=str)
        return functions[s.name](*(values[n.name] for n in names))

    def run(params, xs, state0):
        params = cell.unpack(params)   # a packed gain's blocks, as the stages read them

        def step(state, x):
            values = {cell.input_names[0]: x, **{f"{s}_prev": state[s] for s in cell.state_names},
                      **{p: params[p] for p in cell.vector_param_names}}
            for eq in derivation.forward:
                values[eq.stage.name] = stage(eq, values, params)
            return {s: values[s] for s in cell.state_names}, values[cell.output]
        stateT, outputs = jax.lax.scan(step, state0, xs)
        return outputs, stateT
    return run


def problem(module, seed=0):
    rng = np.random.default_rng(seed)
    params = {name: 0.5 * rng.normal(size=tuple(dim(d, SIZES) for d in shape)) for name, shape in module.PARAMS.items()}
    xs = rng.normal(size=(T, B, SIZES["D"]))
    state0 = {s: rng.normal(size=(B, SIZES[module.STATE_SIZES[s]])) for s in module.STATE}
    dhs = rng.normal(size=(T, B, SIZES[module.OUTPUT[1]]))
    dstateT = {s: rng.normal(size=(B, SIZES[module.STATE_SIZES[s]])) for s in module.STATE}
    return params, xs, state0, dhs, dstateT


def loss_of(forward, dhs, dstateT):
    def loss(params, xs, state0):
        outputs, stateT = forward(params, xs, state0)
        return jnp.sum(outputs * dhs) + sum(jnp.sum(stateT[s] * dstateT[s]) for s in dstateT)
    return loss


def assert_close(a, b, tol=1e-10):
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=tol, atol=tol)


@pytest.mark.parametrize("name", BUILT_IN + SPECS)
def test_equal_to_jax_grad_of_the_plain_cell(name):
    module = jax_module(name)
    params, xs, state0, dhs, dstateT = problem(module)
    plain = plain_forward(derive(entry_of(name).cell))
    ours = loss_of(module.forward, dhs, dstateT)
    theirs = loss_of(plain, dhs, dstateT)
    assert_close(module.forward(params, xs, state0), plain(params, xs, state0))
    assert_close(jax.grad(ours, argnums=(0, 1, 2))(params, xs, state0),
                 jax.grad(theirs, argnums=(0, 1, 2))(params, xs, state0))


@pytest.mark.parametrize("name", BUILT_IN)
def test_equal_to_the_numpy_module(name):
    module, reference = jax_module(name), generated(name)
    params, xs, state0, dhs, dstateT = problem(module, seed=1)
    hs, stateT, cache = module.derived_forward(params, xs, state0)
    grads, dxs, dstate0 = module.derived_backward(params, cache, dhs, dstateT)
    hs_np, stateT_np, cache_np = reference.forward(params, xs, state0)
    grads_np, dxs_np, dstate0_np = reference.backward(params, cache_np, dhs, dstateT)
    assert_close((hs, stateT, grads, dxs, dstate0), (hs_np, stateT_np, grads_np, dxs_np, dstate0_np))


@pytest.mark.parametrize("name", ["lstm", "gru"])
def test_jit_gives_the_same_numbers(name):
    module = jax_module(name)
    params, xs, state0, dhs, dstateT = problem(module, seed=2)
    grad = jax.grad(loss_of(module.forward, dhs, dstateT))
    assert_close(jax.jit(grad)(params, xs, state0), grad(params, xs, state0))
    assert_close(jax.jit(module.forward)(params, xs, None), module.forward(params, xs))


def test_float32_stays_float32():
    module = jax_module("lstm")
    params = module.init_params(jax.random.PRNGKey(0), 3, 4, dtype=jnp.float32)
    xs = jnp.ones((T, B, 3), jnp.float32)
    grads = jax.grad(lambda p: module.forward(p, xs)[0].sum())(params)
    assert module.forward(params, xs)[0].dtype == jnp.float32
    assert all(g.dtype == jnp.float32 for g in grads.values())


def test_importing_without_jax_names_the_package():
    code = ("import sys; sys.modules['jax'] = None\n"
            "import importlib.util as u\n"
            f"s = u.spec_from_file_location('m', r'{GENERATED / 'jax' / 'lstm.py'}')\n"
            "u.module_from_spec(s).__loader__.exec_module(u.module_from_spec(s))\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    last = run.stderr.strip().splitlines()[-1]
    assert run.returncode != 0 and last.startswith("ImportError") and "package jax" in last


def test_generation_does_not_import_jax():
    code = ("import sys; sys.modules['jax'] = None\n"
            "from lstm_derive.build import render_cell\n"
            "from catalogue.cells import get_entry\n"
            "print(len(render_cell(get_entry('gru'), only='jax')['jax/gru.py']))\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=Path(__file__).resolve().parent.parent)
    assert run.returncode == 0, run.stderr


@pytest.mark.parametrize("name", ["lstm", "layernorm_lstm"])
def test_wrong_shapes_are_a_value_error_naming_the_expected_shape(name):
    # Before: "cannot reshape array of shape (5, 2, 2) (size 20) into shape (10, 3)".
    module = jax_module(name)
    params, xs, state0, dhs, dstateT = problem(module)
    with pytest.raises(ValueError, match=r"xs has shape \(3, 2, 2\), expected \(T, B, D\) with D = 3"):
        module.forward(params, xs[:, :, :2])
    with pytest.raises(ValueError, match=r"expected \(T, B, D\)"):
        module.forward(params, xs[0, 0])
    with pytest.raises(ValueError, match=r"state h has shape \(1, 4\), expected \(B, H\) = \(2, 4\)"):
        module.derived_forward(params, xs, {**state0, "h": state0["h"][:1]})
    with pytest.raises(ValueError, match=r"params\['W_i'\] has shape"):
        module.forward({**params, "W_i": params["W_i"][:, :1]}, xs)


@pytest.mark.parametrize("dtype", [np.int32, np.complex64, np.bool_])
def test_an_input_that_is_not_real_floating_point_is_a_value_error(dtype):
    # Before: int gave lax.scan's "carry input and carry output must have equal types",
    # complex ran and returned complex outputs.
    module = jax_module("lstm")
    params, xs, state0, dhs, dstateT = problem(module)
    with pytest.raises(ValueError, match="xs has dtype .*; the cell takes real floating-point arrays"):
        module.forward(params, xs.astype(dtype))
