"""The generated module against central finite differences, and the checker's teeth."""
import numpy as np
import pytest

from conftest import GENERATED, generated
from catalogue.cells import CELLS
from checks.gradcheck import analytic, check, load_module, numeric, problem, relative_errors, worst

SHAPES = [  # (T, B, D, H): includes B=1, T=1 and D != H
    (1, 1, 3, 2), (3, 2, 4, 3), (2, 1, 2, 5), (4, 3, 5, 4), (1, 4, 1, 1),
]
TOLERANCE = 1e-6


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "T{}B{}D{}H{}".format(*s))
def test_every_gradient_matches_finite_differences(lstm, shape):
    errors = check(lstm, *shape, seed=sum(shape))
    assert set(errors) == set(lstm.PARAMS) | {"xs", "h0", "c0"}
    assert worst(errors.values()) < TOLERANCE, errors


FAMILY_SHAPES = [(3, 2, 4, 3, 2), (1, 1, 2, 3, 4), (2, 3, 3, 2, 3)]  # T, B, then D, H, (P or K)
RECURRENT = [name for name, entry in CELLS.items() if entry.cell.recurrent]
FEEDFORWARD = [name for name, entry in CELLS.items() if not entry.cell.recurrent]


# A layer norm over H = 2 entries turns from -1 to 1 over a spread of about sqrt(1e-5): at
# the step 1e-3 the five-point differences of the layer-normalised LSTM are off by 1.5e-3 at
# shape 2-3-3-2-3, by 1.5e-7 at 1e-4 and 1.6e-9 at 1e-5 (the h^4 of their truncation error),
# while its gradients equal PyTorch autograd's to 1e-10 (tests/test_layernorm.py).
FD_STEP = {"layernorm_lstm": 1e-4, "layernorm_gru": 1e-4}


@pytest.mark.parametrize("shape", FAMILY_SHAPES, ids=lambda s: "-".join(map(str, s)))
@pytest.mark.parametrize("name", RECURRENT + FEEDFORWARD)
def test_every_cell_matches_finite_differences(name, shape):
    module = generated(name)
    T, B, *dims = shape
    errors = check(module, T, B, *dims[:len(module.SIZES)], seed=len(name), step=FD_STEP.get(name, 1e-3))
    expected = set(module.PARAMS) | ({"xs"} | {f"{s}0" for s in module.STATE}
                                     if name in RECURRENT else {"x"})
    assert set(errors) == expected
    assert worst(errors.values()) < TOLERANCE, f"{name}: {errors}"


def test_checker_rejects_a_slightly_wrong_gradient(lstm):
    args = problem(lstm, 3, 2, 4, 3, seed=1)
    got, want = analytic(lstm, *args), numeric(lstm, *args)
    assert worst(relative_errors(got, want).values()) < TOLERANCE
    got["U_g"] = got["U_g"] * (1 + 1e-4)
    assert relative_errors(got, want)["U_g"] > TOLERANCE


@pytest.mark.parametrize("bug, gradient", [
    ("d_c = d_k*(1 - k**2) + d_c_next", "c0"),     # forget the carried cell gradient
    ("d_c_prev = d_m*f", "c0"),                     # forget the forget-gate factor
    ("d_h = d_h_next + dhs[t]", "U_f"),             # forget the recurrent fork
])
def test_checker_catches_bugs_seeded_into_the_generated_code(bug, gradient):
    source = (GENERATED / "lstm.py").read_text()
    assert bug in source
    wrong = {"d_c = d_k*(1 - k**2) + d_c_next": "d_c = d_k*(1 - k**2)",
             "d_c_prev = d_m*f": "d_c_prev = d_m",
             "d_h = d_h_next + dhs[t]": "d_h = dhs[t]"}[bug]
    mutant = load_module(source.replace(bug, wrong), "mutant")
    errors = check(mutant, 3, 2, 3, 2, seed=3)
    assert errors[gradient] > 1e-3, errors


def test_gradients_do_not_depend_on_batch_neighbours(lstm):
    params, xs = lstm.init_params(3, 2, seed=5), np.random.default_rng(5).normal(size=(3, 2, 3))
    dhs = np.random.default_rng(6).normal(size=(3, 2, 2))
    _, _, cache = lstm.forward(params, xs)
    grads, dxs, _ = lstm.backward(params, cache, dhs)
    total = {k: 0 for k in grads}
    for b in range(2):
        _, _, c1 = lstm.forward(params, xs[:, b:b + 1])
        g1, dx1, _ = lstm.backward(params, c1, dhs[:, b:b + 1])
        np.testing.assert_allclose(dx1[:, 0], dxs[:, b], rtol=1e-12, atol=1e-15, equal_nan=False)
        total = {k: total[k] + g1[k] for k in g1}
    for k in grads:
        np.testing.assert_allclose(total[k], grads[k], rtol=1e-12, atol=1e-15, equal_nan=False)
