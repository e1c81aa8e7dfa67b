"""generated/torch/<cell>.py: the derived backward inside PyTorch (float64, small shapes).

gradcheck on every cell's autograd.Function; the nn.Module against torch.nn.LSTM/GRU/RNN/
LSTM(proj_size) with their own state dicts (layers, directions, batch_first); every cell
against its NumPy module.  Skipped without torch, a failure when CI=true.
"""
import os

import numpy as np
import pytest

from conftest import GENERATED, ROOT, dim, generated, load_file
from catalogue.cells import CELLS
from codegen.torch_backend.emit import class_name

if os.environ.get("CI") == "true":
    import torch
else:
    torch = pytest.importorskip("torch")

RECURRENT = [name for name, entry in CELLS.items() if entry.cell.recurrent]
SPECS = sorted(p.stem for p in (ROOT / "examples").glob("*.toml"))   # spec cells, all recurrent
SIZES = {"D": 3, "H": 4, "P": 2}
T, B = 3, 2


def torch_module(name):
    folder = GENERATED if name in CELLS else ROOT / "examples"
    return load_file(folder / "torch" / f"{name}.py", f"generated_torch_{name}")


def numpy_module(name):
    return generated(name) if name in CELLS else load_file(ROOT / "examples" / f"{name}.py", f"spec_{name}")


def function_of(module, recompute=False):
    """The module's autograd.Function: the one keeping every cached value, or only the states."""
    name = next(k for k in dir(module) if k.endswith("RecomputeFunction"))
    return getattr(module, name if recompute else name.replace("RecomputeFunction", "Function"))


def random_inputs(module, seed=0):
    g = torch.Generator().manual_seed(seed)
    rand = (lambda *shape: torch.randn(*shape, generator=g, dtype=torch.float64).requires_grad_())
    xs = rand(T, B, SIZES["D"])
    state0 = [rand(B, SIZES[module.STATE_SIZES[s]]) for s in module.STATE]
    params = [(0.5 * rand(*(dim(d, SIZES) for d in shape))).detach().requires_grad_()
              for shape in module.PARAMS.values()]
    return xs, state0, params


@pytest.mark.parametrize("recompute", [False, True], ids=["cached", "recompute"])
@pytest.mark.parametrize("name", RECURRENT + SPECS)
def test_gradcheck_of_the_function(name, recompute):
    module = torch_module(name)
    xs, state0, params = random_inputs(module)
    assert torch.autograd.gradcheck(function_of(module, recompute).apply, (xs, *state0, *params))


def saved_storages(function, xs, state0, params):
    """{storage pointer: bytes} of every tensor the Function saves for backward."""
    seen = {}

    def pack(t):
        seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        function.apply(xs, *state0, *params)
    return seen


@pytest.mark.parametrize("name", RECURRENT + SPECS)
def test_the_recompute_function_saves_the_states_and_nothing_else_it_made(name):
    module = torch_module(name)
    xs, state0, params = random_inputs(module)
    seen = saved_storages(function_of(module, recompute=True), xs, state0, params)
    given = {t.untyped_storage().data_ptr() for t in (xs, *params)}
    made = sum(n for ptr, n in seen.items() if ptr not in given)
    states = sum((T + 1) * B * SIZES[module.STATE_SIZES[s]] * 8 for s in module.STATE)
    assert set(module.SAVED) == {f"{s}_seq" for s in module.STATE} and made == states


@pytest.mark.parametrize("name", RECURRENT + SPECS)
def test_the_function_saves_what_it_keeps_once_and_nothing_else_it_made(name):
    module = torch_module(name)
    xs, state0, params = random_inputs(module)
    seen = saved_storages(function_of(module), xs, state0, params)
    given = {t.untyped_storage().data_ptr() for t in (xs, *params, *state0)}
    made = sum(n for ptr, n in seen.items() if ptr not in given)
    shapes = {name: value.shape for name, value in module._buffers(T, B, module._sizes(
        dict(zip(module.PARAMS, params))), xs).items()}
    derived = getattr(module, "DERIVED", ())
    assert set(module.KEPT) | set(derived) == set(module.CACHED) and not set(module.KEPT) & set(derived)
    assert made == sum(8 * np.prod(shapes[n]) for n in module.KEPT)


def test_indrnn_keeps_its_pre_activation_alone():
    """h = relu(z): the backward reads z (the derivative) and h_prev (the gradient of u); one of
    them is enough, so one (T, B, H) float64 buffer is kept, as many bytes as the plain cell's."""
    module = torch_module("indrnn")
    xs, state0, params = random_inputs(module)
    seen = saved_storages(function_of(module), xs, state0, params)
    given = {t.untyped_storage().data_ptr() for t in (xs, *params, *state0)}
    assert sum(n for ptr, n in seen.items() if ptr not in given) == T * B * SIZES["H"] * 8


def forward_seq(module, seed):
    """Every buffer of CACHED after the forward steps of random inputs, and what made them."""
    xs, state0, params = random_inputs(module, seed=seed)
    params = dict(zip(module.PARAMS, params))
    sizes = module._sizes(params)
    w = module._stack(params, sizes, xs)
    seq = module._buffers(T, B, sizes, xs)
    for s, value in zip(module.STATE, state0):
        seq[f"{s}_seq"][0] = value
    module._forward_steps(w, sizes, xs, seq)
    return xs, state0, w, sizes, seq


@pytest.mark.parametrize("name", [n for n in RECURRENT + SPECS if hasattr(torch_module(n), "DERIVED")])
def test_the_backward_rebuilds_the_states_the_forward_computed(name):
    module = torch_module(name)
    with torch.no_grad():
        xs, state0, w, sizes, seq = forward_seq(module, seed=3)
        firsts = [v for s, v in zip(module.STATE, state0) if f"{s}_seq" in module.DERIVED]
        again = {n: seq[n].clone() for n in module.KEPT}
        module._rebuild(w, sizes, xs, again, firsts)
        for n in module.DERIVED:
            np.testing.assert_allclose(again[n].numpy(), seq[n].numpy(), rtol=1e-12, atol=1e-14)
        wrong = {n: 1.5 * seq[n] for n in module.KEPT}   # the check can fail: other values
        module._rebuild(w, sizes, xs, wrong, firsts)
        assert all(not torch.allclose(wrong[n], seq[n]) for n in module.DERIVED)


@pytest.mark.parametrize("name", RECURRENT + SPECS)
def test_the_backward_recomputes_what_the_forward_computed(name):
    module = torch_module(name)
    with torch.no_grad():
        xs, _, w, sizes, seq = forward_seq(module, seed=2)
        again = {name: seq[name].clone() for name in module.SAVED}
        module._recompute(w, sizes, xs, again)
        assert again.keys() == seq.keys()
        for value in module.CACHED:
            np.testing.assert_allclose(again[value].numpy(), seq[value].numpy(), rtol=1e-12, atol=1e-14)
        if set(module.CACHED) != set(module.SAVED):   # the check can fail: other states, other values
            wrong = {name: 1.5 * seq[name] for name in module.SAVED}
            module._recompute(w, sizes, xs, wrong)
            assert any(not torch.allclose(wrong[v], seq[v]) for v in module.CACHED if v not in module.SAVED)


@pytest.mark.parametrize("name", RECURRENT + SPECS)
def test_equal_to_the_numpy_module(name):
    module, reference = torch_module(name), numpy_module(name)
    xs, state0, params = random_inputs(module, seed=1)
    out, *stateT = function_of(module).apply(xs, *state0, *params)
    rng = np.random.default_rng(2)
    dhs = rng.normal(size=tuple(out.shape))
    dT = [rng.normal(size=tuple(s.shape)) for s in stateT]
    loss = (out * torch.from_numpy(dhs)).sum() + sum((s * torch.from_numpy(d)).sum() for s, d in zip(stateT, dT))
    loss.backward()
    np_params = {n: p.detach().numpy() for n, p in zip(module.PARAMS, params)}
    np_state = {s: v.detach().numpy() for s, v in zip(module.STATE, state0)}
    hs, np_stateT, cache = reference.forward(np_params, xs.detach().numpy(), np_state)
    grads, dxs, dstate0 = reference.backward(np_params, cache, dhs, dict(zip(module.STATE, dT)))
    np.testing.assert_allclose(out.detach().numpy(), hs, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(xs.grad.numpy(), dxs, rtol=1e-10, atol=1e-12)
    for s, v in zip(module.STATE, state0):
        np.testing.assert_allclose(v.grad.numpy(), dstate0[s], rtol=1e-10, atol=1e-12)
    for n, p in zip(module.PARAMS, params):
        np.testing.assert_allclose(p.grad.numpy(), grads[n], rtol=1e-10, atol=1e-12, err_msg=n)


PYTORCH = {"lstm": ("LSTM", {}), "gru_reset_after": ("GRU", {}), "rnn": ("RNN", {}),
           "lstmp": ("LSTM", {"proj_size": 2})}


@pytest.mark.parametrize("name", sorted(PYTORCH))
@pytest.mark.parametrize("layers, bidirectional, batch_first, recompute, unbatched",
                         [(1, False, False, False, False), (2, True, True, False, False),
                          (2, True, True, True, False), (1, False, False, False, True),
                          (2, True, True, False, True)])
def test_the_module_equals_torch_nn(name, layers, bidirectional, batch_first, recompute, unbatched):
    """unbatched: one sequence (T, D), its states (layers * directions, size), as torch.nn takes."""
    kind, extra = PYTORCH[name]
    module = torch_module(name)
    cls = getattr(module, class_name(name))
    torch.manual_seed(0)
    options = dict(num_layers=layers, bidirectional=bidirectional, batch_first=batch_first)
    theirs = getattr(torch.nn, kind)(SIZES["D"], SIZES["H"], **extra, **options).double()
    ours = cls(SIZES["D"], SIZES["H"], *extra.values(), **options, dtype=torch.float64, recompute=recompute)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(B, T, SIZES["D"], dtype=torch.float64) if batch_first else \
        torch.randn(T, B, SIZES["D"], dtype=torch.float64)
    x = x[0] if unbatched and batch_first else x[:, 0] if unbatched else x
    dirs = 2 if bidirectional else 1
    state_sizes = {"h": extra.get("proj_size", SIZES["H"]), "c": SIZES["H"]}
    state0 = tuple(torch.randn(layers * dirs, B, state_sizes[s], dtype=torch.float64)
                   for s in module.STATE)
    state0 = tuple(s[:, 0] for s in state0) if unbatched else state0
    results = []
    for net in (theirs, ours):
        xr = x.clone().requires_grad_()
        s0 = tuple(s.clone().requires_grad_() for s in state0)
        out, stateT = net(xr, s0 if len(s0) > 1 else s0[0])
        stateT = stateT if isinstance(stateT, tuple) else (stateT,)
        loss = (out ** 2).sum() + sum((s ** 3).sum() for s in stateT)
        loss.backward()
        results.append([out, *stateT, xr.grad, *(s.grad for s in s0),
                        *(p.grad for p in net.parameters())])
    for a, b in zip(*results):
        torch.testing.assert_close(b, a, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name", ["peephole_lstm", "gru"])
def test_a_cell_torch_lacks_is_a_module_too(name):
    module = torch_module(name)
    net = getattr(module, class_name(name))(SIZES["D"], SIZES["H"], num_layers=2, bidirectional=True,
                                            dtype=torch.float64)
    assert list(net.state_dict())[:len(module.PARAMS)] == [f"{p}_l0" for p in module.PARAMS]
    out, stateT = net(torch.randn(T, B, SIZES["D"], dtype=torch.float64))
    out.sum().backward()
    assert out.shape == (T, B, 2 * SIZES["H"]) and stateT[0].shape == (4, B, SIZES["H"])
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())


def test_importing_without_torch_names_the_package(tmp_path):
    import subprocess
    import sys
    code = ("import sys; sys.modules['torch'] = None; import runpy; "
            f"runpy.run_path({str(GENERATED / 'torch' / 'lstm.py')!r})")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    last = run.stderr.strip().splitlines()[-1]
    assert run.returncode != 0 and "needs PyTorch (package torch)" in last


@pytest.mark.parametrize("name", ["lstm", "layernorm_lstm", "lstmp"])
def test_wrong_shapes_are_a_value_error_naming_the_expected_shape(name):
    # Before: torch's own "shape '[10, 3]' is invalid for input of size 20" from a reshape.
    module = torch_module(name)
    xs, state0, params = random_inputs(module)
    function = function_of(module)
    with pytest.raises(ValueError, match=r"xs has shape \(3, 2, 2\), expected \(T, B, D\) with D = 3"):
        function.apply(xs[:, :, :2], *state0, *params)
    with pytest.raises(ValueError, match=r"expected \(T, B, D\)"):
        function.apply(xs[0], *state0, *params)
    with pytest.raises(ValueError, match=r"state h has shape \(1, (\d)\), expected \(B, [HP]\) = \(2, \1\)"):
        function.apply(xs, state0[0][:1], *state0[1:], *params)
    with pytest.raises(ValueError, match=r"params\['W_i'\] has shape"):
        function.apply(xs, *state0, params[0], params[1][:, :1], *params[2:])
    net = getattr(module, class_name(name))(*(SIZES[s] for s in module.SIZES))   # was an IndexError
    with pytest.raises(ValueError, match=r"input has shape \(5,\), expected \(T, B, D\)"):
        net(torch.zeros(5))


def test_an_input_of_another_dtype_is_a_value_error_naming_the_dtypes():
    # Before: matmul's "expected m1 and m2 to have the same dtype" (torch.nn.LSTM says ValueError too).
    module = torch_module("lstm")
    xs, state0, params = random_inputs(module)
    for wrong in (xs.detach().float(), xs.detach().long(), xs.detach().to(torch.complex128)):
        with pytest.raises(ValueError, match="must share one floating dtype"):
            function_of(module).apply(wrong, *state0, *params)
