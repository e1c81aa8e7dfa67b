"""The fast paths the benchmark times: checkpointing, float32 at the medium size, the benchmark
script itself.  Correctness only; speed is shown by benchmarks/bench.py, never by a test."""
import sys

import numpy as np
import pytest

from conftest import ROOT, generated, load_file, random_problem
from catalogue.cells import CELLS
from checks.gradcheck import worst

RECURRENT = [name for name, entry in CELLS.items() if entry.cell.recurrent]
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))


def modules():
    return [generated(name) for name in RECURRENT] + \
        [load_file(path, f"example_{path.stem}") for path in EXAMPLES]


def sizes(module, D, H):
    return [{"D": D, "H": H, "P": 3}[s] for s in module.SIZES]


def run(module, params, xs, state0, dhs, dstateT, **options):
    hs, stateT, cache = module.forward(params, xs, state0, **options)
    grads, dxs, dstate0 = module.backward(params, cache, dhs, dstateT)
    return {"hs": hs, "dxs": dxs, **grads, **{f"{s}T": v for s, v in stateT.items()},
            **{f"d{s}0": v for s, v in dstate0.items()}}


@pytest.mark.parametrize("module", modules(), ids=lambda m: m.__name__)
def test_checkpointed_gradients_equal_the_plain_ones(module):
    T, B = 7, 2
    params = module.init_params(*sizes(module, 4, 5), seed=1)
    rng = np.random.default_rng(0)
    xs = rng.normal(size=(T, B, 4))
    hs, stateT, _ = module.forward(params, xs)
    state0 = {s: rng.normal(size=v.shape) for s, v in stateT.items()}
    dhs = rng.normal(size=hs.shape)
    dstateT = {s: rng.normal(size=v.shape) for s, v in stateT.items()}
    plain = run(module, params, xs, state0, dhs, dstateT)
    for k in (1, 2, 3, 7, 10):   # every step, k dividing nothing, k = T, k > T
        got = run(module, params, xs, state0, dhs, dstateT, checkpoint=k)
        for key, value in plain.items():
            np.testing.assert_allclose(got[key], value, rtol=1e-12, atol=1e-13, err_msg=f"k={k} {key}", equal_nan=False)


def test_checkpointing_cuts_the_cache_about_k_fold(lstm):
    params, xs, *_ = random_problem(lstm, 64, 3, 4, 5)

    def held(cache):
        return sum(v.nbytes for v in cache["seq"].values()) if cache["seq"] else \
            sum(v.nbytes for state in cache["saved"] for v in state.values())
    plain = held(lstm.forward(params, xs)[2])
    assert held(lstm.forward(params, xs, checkpoint=8)[2]) * 8 <= plain


@pytest.mark.parametrize("bad", [0, -2, 2.5, True, "3"])
def test_checkpoint_must_be_a_positive_int(lstm, bad):
    with pytest.raises(ValueError, match="checkpoint must be None or a positive int"):
        lstm.forward(lstm.init_params(3, 2), np.zeros((2, 1, 3)), checkpoint=bad)


def float32_error(module, T, B, D, H, **options):
    """Largest relative difference of float32 and float64 gradients (per parameter and dxs)."""
    if "P" in module.SIZES:   # the projection LSTM: its output and h have size P = H / 2
        p64 = module.init_params(D, H, H // 2, seed=6)
        rng = np.random.default_rng(5)
        xs = rng.normal(size=(T, B, D))
        hs, stateT, _ = module.forward(p64, xs)
        state0 = {s: rng.normal(size=v.shape) for s, v in stateT.items()}
        dhs = rng.normal(size=hs.shape)
        dstateT = {s: rng.normal(size=v.shape) for s, v in stateT.items()}
    else:
        p64, xs, state0, dhs, dstateT = random_problem(module, T, B, D, H, seed=5)
    f32 = (lambda v: v.astype(np.float32))
    r64 = run(module, p64, xs, state0, dhs, dstateT, **options)
    r32 = run(module, {k: f32(v) for k, v in p64.items()}, f32(xs),
              {k: f32(v) for k, v in state0.items()}, f32(dhs),
              {k: f32(v) for k, v in dstateT.items()}, **options)
    assert all(v.dtype == np.float32 for v in r32.values())
    return worst(float(np.abs(r32[k] - v).max() / np.abs(v).max()) for k, v in r64.items())


def test_float32_lstm_gradients_agree_with_float64_at_the_medium_size(lstm):
    assert float32_error(lstm, 32, 32, 128, 128) < 1e-4
    assert float32_error(lstm, 32, 32, 128, 128, checkpoint=5) < 1e-4


@pytest.mark.parametrize("name", [n for n in RECURRENT if n != "lstm"])
def test_float32_gradients_agree_with_float64(name):
    assert float32_error(generated(name), 8, 4, 16, 16) < 1e-4


def test_benchmark_script_runs_and_checks_its_gradients(monkeypatch, capsys):
    """benchmarks/bench.py end to end at tiny sizes: it compares generated, reference and
    (when installed) PyTorch gradients itself and exits on a disagreement."""
    bench = load_file(ROOT / "benchmarks" / "bench.py", "bench")
    monkeypatch.setattr(bench, "SIZES", {"small": (3, 2, 4, 6), "tall": (9, 2, 3, 4)})
    small_gemm = bench.gemm_run(64)
    monkeypatch.setattr(bench, "gemm_run", lambda: small_gemm)
    monkeypatch.setattr(bench, "SETTLE", 0)
    monkeypatch.setattr(sys, "argv", ["bench.py"])
    bench.main(["--repeats", "1"])
    out = capsys.readouterr().out
    assert "small" in out and "Gradient checkpointing" in out and "lstm" in out.lower()
    if "torch" in sys.modules:   # the new cells against the same equations written plainly in PyTorch
        assert "against the cell written plainly in PyTorch" in out
        assert all(f"{cell:8} small" in out for cell in ("indrnn", "slstm"))
    assert bench.cache_lower_bound("lstm", (2, 3, 4, 5)) == 4 * 2 * 3 * 5 * 7



def test_the_benchmark_covers_every_recurrent_cell():
    """Its calls-per-step and overhead tables cover every recurrent cell, as the README says: the
    built-in ones and the spec cells of examples/ (a cell added later must be added there)."""
    bench = load_file(ROOT / "benchmarks" / "bench.py", "bench")
    specs = {p.stem for p in (ROOT / "examples").glob("*.toml")}
    assert set(bench.RECURRENT_CELLS) == set(RECURRENT) | specs
    assert len(bench.RECURRENT_CELLS) == len(set(bench.RECURRENT_CELLS))

def test_later_calls_never_change_a_kept_cache(lstm):
    """A cache (or a copy of it) kept while others are made and dropped gives the same gradients."""
    import copy
    params, xs, state0, dhs, dstateT = random_problem(lstm, 5, 2, 3, 4, seed=7)
    expected = run(lstm, params, xs, state0, dhs, dstateT)
    for keep in (lambda c: c, copy.copy, lambda c: c.copy(), copy.deepcopy):
        _, _, cache = lstm.forward(params, xs, state0)
        kept = keep(cache)
        del cache
        other = [lstm.forward(params, 2 * xs, state0)[2] for _ in range(3)]
        grads, dxs, _ = lstm.backward(params, kept, dhs, dstateT)
        np.testing.assert_allclose(dxs, expected["dxs"], rtol=1e-12, equal_nan=False)
        for name, value in grads.items():
            np.testing.assert_allclose(value, expected[name], rtol=1e-12, atol=1e-14, err_msg=name, equal_nan=False)
        del other


@pytest.mark.parametrize("module", modules(), ids=lambda m: m.__name__)
@pytest.mark.parametrize("D, H", [(1, 1), (3, 4)])
def test_the_forwards_weight_copies_never_change_the_cached_weights(module, D, H):
    """The forward scales its own copies of the stacked weights (a sigmoid's 1/2 folded in); at
    one unit a transposed weight is already contiguous, so a copy that only viewed it would halve
    the weights the backward reads."""
    params = module.init_params(*sizes(module, D, H), seed=2)
    xs = np.random.default_rng(3).normal(size=(3, 2, D))
    _, _, cache = module.forward(params, xs)
    given, size = dict(params), module._sizes(params)
    if hasattr(module, "_unpack"):   # packed parameters (layer-norm gains) are split as forward splits them
        given.update(module._unpack(given, size))
    stacked = module._stack(given, size, xs.dtype)
    for name, value in stacked.items():
        np.testing.assert_array_equal(cache["w"][name], value, err_msg=name)


def test_the_sigmoid_blocks_factor_is_read_off_the_derivation():
    """The LSTM's sigmoid gates fold the 1/2 of tanh(z/2) into the weights; tanh's block has nothing to fold."""
    from codegen.program import program
    from derive.derivation import derive
    prog = program(derive(CELLS["lstm"].cell))
    assert {(f.name, f.rows, str(f.factor)) for f in prog.folds} == {
        ("Wcat_x", "0:3 * H", "1/2"), ("Wcat_h_prev", "0:3 * H", "1/2"), ("bcat_x", "0:3 * H", "1/2")}
    rnn = program(derive(CELLS["rnn"].cell))
    assert rnn.folds == ()


def test_a_block_stored_gate_by_gate_reads_one_gate_per_index_and_nothing_else():
    """The NumPy module keeps the LSTM's three sigmoid gates as (3, B, H) per step; a column
    slice that is not exactly one gate has no index there and is refused when generating."""
    from codegen.numpy_backend.layout import gate_major
    from codegen.schedule import plan
    from derive.derivation import derive
    layout = gate_major(plan(derive(CELLS["lstm"].cell)))
    assert layout.of("Z_f_i_o_seq") == layout.of("d_Z_f_i_o") == (3, "H")
    assert layout.of("Z_g") is None          # one gate: contiguous already
    assert [layout.gate("Z_f_i_o", c) for c in ("0:H", "H:2 * H", "2 * H:3 * H")] == [0, 1, 2]
    for bad in ("0:2 * H", "H:3 * H", "3 * H:4 * H"):
        with pytest.raises(ValueError, match="not one gate"):
            layout.gate("Z_f_i_o", bad)
