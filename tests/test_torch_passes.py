"""The PyTorch backend's own record passes: `in_place` (a gradient buffer copied whole into
columns of another becomes a view of them) and `derived_states` (states rebuilt from their
step's other cached values), on small hand-written programs whose expected output is written
here, and on real cells: a module generated without a pass (or without the chains' factors,
`codegen.program_chain`) computes what the committed one does.
"""
import sympy as sp
import pytest

from conftest import GENERATED, load_file
from catalogue.cells import CELLS
from codegen.program import program
from codegen.records import Assign, Buffer, Copy, Gemm, Program, Ref, View
from codegen.torch_backend import emit
from codegen.torch_backend.derived_states import derived_states
from codegen.torch_backend.in_place import in_place
from derive.derivation import derive

x, y = sp.symbols("x y", real=True)
BUFFERS = (Buffer("d_A", ("steps", "B", "3 * H")), Buffer("d_P", ("steps", "B", "2 * H")),
           Buffer("d_Q", ("steps", "B", "H")))
LOOP = (Assign(Ref("d_P", "t"), x), Assign(Ref("d_Q", "t"), y))
COPY_P = Copy(Ref("d_A", ":", "0:2 * H"), Ref("d_P", ":"))
COPY_Q = Copy(Ref("d_A", ":", "2 * H:3 * H"), Ref("d_Q", ":", "0:H"))
VIEW_P = View("d_P", Ref("d_A", ":", "0:2 * H"))
VIEW_Q = View("d_Q", Ref("d_A", ":", "2 * H:3 * H"))


def backward(pre=BUFFERS, loop=LOOP, post=(COPY_P, COPY_Q)):
    return Program(stacking=(), weights=(), cached=(), backward_pre=pre, backward_loop=loop,
                   backward_post=post)


def test_whole_copies_become_views_of_the_columns_they_were_copied_into():
    after = in_place(backward())
    assert after.backward_pre == (BUFFERS[0], VIEW_P, VIEW_Q) and after.backward_post == ()


@pytest.mark.parametrize("why, prog, aliased", [
    ("the loop writes some of d_P's columns of d_A too",
     backward(loop=LOOP + (Assign(Ref("d_A", "t", "H:2 * H"), x),)), {"d_Q"}),
    ("a column range beside d_P's: d_P is still aliased",
     backward(loop=LOOP + (Assign(Ref("d_A", "t", "2 * H:3 * H"), x),)), {"d_P"}),
    ("d_P is copied twice", backward(post=(COPY_P, COPY_Q, Copy(Ref("d_R", ":"), Ref("d_P", ":")))),
     {"d_Q"}),
    ("only some columns of d_P are copied", backward(post=(Copy(Ref("d_A", ":", "0:H"), Ref("d_P", ":", "0:H")),
                                                          COPY_Q)), {"d_Q"}),
    ("one step is copied, not all", backward(post=(Copy(Ref("d_A", "t", "0:2 * H"), Ref("d_P", "t")),)), set()),
    ("a product overwrites d_A after the copies",
     backward(post=(COPY_P, COPY_Q, Gemm(Ref("d_A"), Ref("a"), Ref("b")))), set()),
])
def test_a_copy_stays_a_copy_where_a_view_would_change_a_value(why, prog, aliased):
    after = in_place(prog)
    views = {r.name for r in after.backward_pre if isinstance(r, View)}
    copied = {r.source.name for r in after.backward_post if isinstance(r, Copy)}
    buffers = {r.name for r in after.backward_pre if isinstance(r, Buffer)}
    assert views == aliased, why
    assert copied == {r.source.name for r in prog.backward_post if isinstance(r, Copy)} - aliased, why
    assert buffers == {"d_A", "d_P", "d_Q"} - aliased, why


def test_the_gru_is_a_cell_the_pass_changes():
    """So that the module comparisons below (and the gradients against NumPy in
    test_torch_backend.py) exercise the pass on a real cell."""
    from codegen.program_hoist import hoist
    from codegen.program_reduce import reduce_after
    prog = reduce_after(hoist(program(derive(CELLS["gru"].cell))), CELLS["gru"].cell.sizes())
    assert in_place(prog) != prog


def test_states_are_derived_where_their_step_alone_determines_them():
    """h = k * o (LSTM) and h = relu(z) (IndRNN) read only cached values of their own step; the
    LSTM's c = f c_prev + i g and the GRU's h read the state before them: saved, not rebuilt."""
    found = {name: derived_states(program(derive(CELLS[name].cell)))[0] for name in ("lstm", "indrnn", "gru")}
    assert found == {"lstm": ("h_seq",), "indrnn": ("h_seq",), "gru": ()}


z, q, u = sp.symbols("z q u", real=True)
STEP_VIEWS = (View("h_prev", Ref("h_seq", "t")), View("z", Ref("z_seq", "t")))


def forward(*loop):
    """A program whose forward step is `loop`, caching the state h and a value z."""
    return Program(stacking=(), weights=("u", "W"), cached=(("h", "H", True), ("z", "H", False)),
                   forward_pre=(Buffer("A", ("B", "H")),), forward_loop=STEP_VIEWS + loop)


@pytest.mark.parametrize("why, prog, found", [
    ("h = z * u: z is kept, u a parameter", forward(Assign(Ref("h_seq", "t + 1"), z * u)), ("h_seq",)),
    ("h = z + q, q = h_prev * u: the step before",
     forward(Assign("q", sp.Symbol("h_prev", real=True) * u), Assign(Ref("h_seq", "t + 1"), z + q)), ()),
    ("h = tanh(A), A = z W: a product", forward(Gemm(Ref("A"), Ref("z"), Ref("W"), transpose_b=True),
                                                Assign(Ref("h_seq", "t + 1"), sp.tanh(sp.Symbol("A", real=True)))),
     ()),
])
def test_a_state_is_derived_only_from_its_own_step_without_a_product(why, prog, found):
    names, records = derived_states(prog)
    assert names == found, why
    if found:
        assert records[-1] == Assign(Ref("h_seq", "1:"), z * u) and View("z", Ref("z_seq", "0:steps")) in records


def generated_without(name, monkeypatch, tmp_path, **passes):
    """The cell's torch module generated with the given passes replaced, loaded."""
    for attr, value in passes.items():
        monkeypatch.setattr(emit, attr, value)
    path = tmp_path / f"{name}.py"
    path.write_text(emit.emit_torch(derive(CELLS[name].cell), CELLS[name], "test"))
    return load_file(path, f"without_{name}_{'_'.join(passes)}")


@pytest.mark.parametrize("name, passes", [
    ("gru", {"in_place": lambda prog: prog}),
    ("lstm", {"derived_states": lambda prog: ((), [])}),
    ("indrnn", {"derived_states": lambda prog: ((), [])}),
    ("lstm", {"program": lambda derivation, **_: program(derivation)}),
    ("cifg_lstm", {"program": lambda derivation, **_: program(derivation)}),
])
def test_a_module_generated_without_a_pass_computes_the_same(name, passes, monkeypatch, tmp_path):
    torch = pytest.importorskip("torch")
    from test_torch_backend import function_of, random_inputs, torch_module
    module = torch_module(name)
    plain = generated_without(name, monkeypatch, tmp_path, **passes)
    assert (tmp_path / f"{name}.py").read_text() != (GENERATED / "torch" / f"{name}.py").read_text()
    results = []
    for m in (module, plain):
        xs, state0, params = random_inputs(m, seed=4)
        out = function_of(m).apply(xs, *state0, *params)
        sum((o * (k + 1.5)).sum() for k, o in enumerate(out)).backward()
        results.append([t.grad for t in (xs, *state0, *params)] + [o.detach() for o in out])
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("recompute", [False, True], ids=["cached", "recompute"])
@pytest.mark.parametrize("steps, batch", [(1, 1), (5, 1)])
@pytest.mark.parametrize("name", ["lstm", "cifg_lstm", "indrnn", "slstm", "layernorm_lstm", "layernorm_gru"])
def test_one_step_or_one_row_in_float32_gives_the_numpy_gradients(name, steps, batch, recompute):
    """The chains' factors, the rebuilt states and the stacked norms at the edges of their
    all-steps passes (one step, one batch row), in float32, against the NumPy module in float64."""
    torch = pytest.importorskip("torch")
    import numpy as np
    from conftest import generated, random_problem
    from test_torch_backend import function_of, torch_module
    module, reference = torch_module(name), generated(name)
    params, xs, state0, dhs, dstateT = random_problem(reference, steps, batch, 3, 4, seed=5)
    _, _, cache = reference.forward(params, xs, state0)
    grads, dxs, dstate0 = reference.backward(params, cache, dhs, dstateT)
    leaves = [torch.tensor(v, dtype=torch.float32, requires_grad=True)
              for v in (xs, *(state0[s] for s in module.STATE), *(params[n] for n in module.PARAMS))]
    out, *stateT = function_of(module, recompute).apply(*leaves)
    loss = (out * torch.tensor(dhs, dtype=torch.float32)).sum() + sum(
        (s * torch.tensor(dstateT[n], dtype=torch.float32)).sum() for n, s in zip(module.STATE, stateT))
    loss.backward()
    want = [dxs, *(dstate0[s] for s in module.STATE), *(grads[n] for n in module.PARAMS)]
    for leaf, expected in zip(leaves, want):
        np.testing.assert_allclose(leaf.grad.numpy(), expected, rtol=1e-4, atol=1e-5)
