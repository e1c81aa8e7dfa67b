"""Random and hostile input never gets a traceback, a hang or unbounded memory.

Hypothesis writes formulas (valid names, wrong names, huge numbers and exponents, deep
nesting, junk text) for `compare --formula`, and chains of spec stages (some whose forks
merge again, so their Jacobian paths multiply) for the spec parser, the derivation and the
state Jacobians.  Every case must end within its deadline with exit 0, 1 or 2 (2 with one
line on stderr), and the memory of this process and of the children it waited for stays
bounded.  A watchdog alarm turns a hang into a failure instead of a stuck test run.
"""
import resource
import signal
import time
from contextlib import contextmanager
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from catalogue.spec import load_spec
from derive import derive
from derive.jacobians import expanded_terms, state_jacobians
from lstm_derive.cli import main

CASE_SECONDS = 15          # a hard limit per case (the watchdog); each usually takes < 1 s
MEMORY_GROWTH_MB = 600     # of this process over the whole test
CHILD_MB = 3000            # of any child it waited for (forked SymPy work is capped at +2 GB)

ELEMENTWISE = ["d_h", "o", "k", "c", "f", "i", "g", "c_prev", "h_prev", "d_c_next", "dL_dh",
               "d_c", "d_k", "a_f", "b_f"]
NUMBERS = ["0", "1", "2", "0.5", "-1", "1e400", "1e-300", "10**10", "9**9**9", "2**0.5",
           "(1/3)", "123456789012345678901234567890", "1e15"]


@contextmanager
def watchdog(seconds):
    def expire(signum, frame):
        raise TimeoutError(f"a case ran longer than {seconds} s")
    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def peak_mb(who):
    return resource.getrusage(who).ru_maxrss / 1024   # ru_maxrss is in KiB on Linux


def expressions():
    leaves = st.one_of(st.sampled_from(ELEMENTWISE), st.sampled_from(["x", "W_f", "U_f", "d_x"]),
                       st.sampled_from(NUMBERS), st.integers(-10**6, 10**6).map(str),
                       st.floats(allow_nan=False, allow_infinity=False).map(repr))

    def extend(inner):
        binary = st.tuples(inner, st.sampled_from(["+", "-", "*", "/", "**", "@"]), inner)
        return st.one_of(binary.map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
                         st.tuples(st.sampled_from(["sigmoid", "tanh", "exp", "log", "sum", "-"]),
                                   inner).map(lambda t: f"{t[0]}({t[1]})"),
                         inner.map(lambda e: f"({e}).T"))
    return st.recursive(leaves, extend, max_leaves=10)


FORMULAS = st.one_of(
    st.tuples(st.sampled_from(["d_h", "d_c", "d_a_f", "d_W_f", "d_h_prev", "d_q"]), expressions())
    .map(lambda t: f"{t[0]} = {t[1]}"),
    st.text(max_size=80),
)


@pytest.fixture(scope="module")
def memory():
    return peak_mb(resource.RUSAGE_SELF)


@settings(max_examples=60, deadline=timedelta(seconds=CASE_SECONDS),
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(FORMULAS)
def test_random_formulas_are_answered_in_seconds(capsys, monkeypatch, memory, formula):
    from checks import formulacheck
    monkeypatch.setattr(formulacheck, "PROOF_SECONDS", 1.0)   # the budget is what is tested
    start = time.monotonic()
    with watchdog(CASE_SECONDS):
        code = main(["compare", "lstm", "--formula", formula])
    out = capsys.readouterr()
    assert time.monotonic() - start < CASE_SECONDS
    assert code in (0, 1, 2) and "Traceback" not in out.err
    if code == 2:
        lines = out.err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("lstm-derive: error: "), out.err
    assert peak_mb(resource.RUSAGE_SELF) < memory + MEMORY_GROWTH_MB
    assert peak_mb(resource.RUSAGE_CHILDREN) < CHILD_MB


HEADER = """name = "fuzz"
inputs = ["x"]
state = ["h"]
output = "h"
[params]
W = ["H", "D"]
U = ["H", "H"]
b = ["H"]
{weights}
[[stages]]
name = "a0"
expr = "sigmoid(W @ x + U @ h_prev + b)"
"""
STAGES = ["tanh({p})", "sigmoid({p} * {p} + h_prev * a0)", "{p} + tanh({p})", "{p} * {q}",
          "exp({p}) / (1 + exp({p}))", "log(1 + {p} * {p})", "{c} * {p} - {q}", "softsign({p}) + {c}",
          "tanh(V{i} @ {p} + Z{i} @ {p})", "relu({p}) * (1 - {q})"]
CONSTANTS = ["0.5", "2", "1e400", "1e16", "3e-300", "10"]


@st.composite
def chains(draw):
    n = draw(st.integers(1, 14))
    weights, body = "", HEADER
    for i in range(1, n + 1):
        template = draw(st.sampled_from(STAGES))
        p, q = (f"a{draw(st.one_of(st.just(i - 1), st.integers(0, i - 1)))}" for _ in range(2))
        if "V{i}" in template:
            weights += f'V{i} = ["H", "H"]\nZ{i} = ["H", "H"]\n'
        body += f'[[stages]]\nname = "a{i}"\nexpr = "{template.format(p=p, q=q, i=i, c=draw(st.sampled_from(CONSTANTS)))}"\n'
    last = draw(st.sampled_from(["tanh(a{n}) * h_prev", "(1 - a{n}) * h_prev + a{n} * a0", "a{n} + h_prev"]))
    body += f'[[stages]]\nname = "h"\nexpr = "{last.format(n=n)}"\n'
    return body.format(weights=weights)


@settings(max_examples=25, deadline=timedelta(seconds=CASE_SECONDS),
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(chains())
def test_random_spec_chains_load_derive_and_expand_in_seconds(tmp_path_factory, capsys, memory, text):
    path = tmp_path_factory.mktemp("chain") / "fuzz.toml"
    path.write_text(text)
    start = time.monotonic()
    with watchdog(CASE_SECONDS):
        code = main(["show", str(path)])
        err = capsys.readouterr().err.strip().splitlines()
        assert code in (0, 2) and len(err) == (code == 2), err
        if code == 2:
            assert err[0].startswith(f"lstm-derive: error: {path}: ")
            return
        for j in state_jacobians(derive(load_spec(path)[0].cell)):   # what the document and plot use
            for p in j.paths:
                expanded_terms(p.diags[0])
    assert time.monotonic() - start < CASE_SECONDS
    assert peak_mb(resource.RUSAGE_SELF) < memory + MEMORY_GROWTH_MB
