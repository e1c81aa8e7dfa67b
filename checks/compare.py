"""Hand-written forward/backward code against the derivation: a table, then a diagnosis.

The derived side is `derive.interpret.run` on the cell's `Derivation` (the reference
meaning of the derivation, independent of any generated file).  Both sides get the same
random float64 problems (`SHAPES` x seeds: T=1, B=1 and D != H among them).  Every
quantity — the forward outputs (hs and the final state; y for a feed-forward network),
every parameter gradient, dxs and each initial-state gradient — becomes one table row
with its largest absolute and relative error and a verdict.  When something disagrees,
`checks.diagnose` says what (forward first, simple relations, one-change derivations,
time localisation).  A derived value that is NaN or inf (the cell is not defined at the
random inputs) stops the comparison with a one-line DeriveError: nothing can agree with it.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from checks.gradcheck import worst
from derive.errors import DeriveError
from derive.interpret import run

# (T, B, sizes): unused size symbols are ignored by cells that lack them
SHAPES = ((3, 2, {"D": 3, "H": 2, "P": 1, "K": 2}),
          (1, 1, {"D": 2, "H": 3, "P": 2, "K": 3}),
          (4, 1, {"D": 1, "H": 2, "P": 1, "K": 2}),
          (2, 3, {"D": 2, "H": 2, "P": 1, "K": 2}))   # P < H: PyTorch's projection needs it
SEEDS = (0, 1)


@dataclass(frozen=True)
class Problem:
    """One comparison run: sizes, parameters, inputs, initial state, upstream gradients."""

    T: int
    B: int
    sizes: dict
    params: dict
    xs: np.ndarray
    state0: dict
    dhs: np.ndarray
    dstateT: dict

    def head(self, T: int, carry: tuple[str, ...] = ()) -> "Problem":
        """The first T steps; only the states in `carry` get a gradient from after the end."""
        dstateT = {s: v if s in carry else np.zeros_like(v) for s, v in self.dstateT.items()}
        return replace(self, T=T, xs=self.xs[:T], dhs=self.dhs[:T], dstateT=dstateT)

    def describe(self) -> str:
        return f"T={self.T}, B={self.B}, " + ", ".join(f"{k}={v}" for k, v in self.sizes.items())


def make_problem(cell, T: int, B: int, sizes: dict, seed: int) -> Problem:
    """Random parameters (uniform in +-0.9), inputs, state and upstream gradients."""
    rng = np.random.default_rng(seed)
    value_sizes = cell.sizes()
    used = sorted({s for _, shape in cell.params() for s in shape} | set(value_sizes.values()))
    sizes = {s: sizes[s] for s in used}
    params = {name: rng.uniform(-0.9, 0.9, size=tuple(sizes[s] for s in shape))
              for name, shape in cell.params()}
    T = T if cell.recurrent else 1
    out = sizes[value_sizes[cell.output]]
    xs = rng.normal(size=(T, B, sizes[value_sizes[cell.input_names[0]]]))
    state0 = {s: 0.5 * rng.normal(size=(B, sizes[n])) for s, n in cell.state}
    dhs = rng.normal(size=(T, B, out))
    dstateT = {s: rng.normal(size=(B, sizes[n])) for s, n in cell.state}
    return Problem(T, B, sizes, params, xs, state0, dhs, dstateT)


def problems(cell, seed: int = 0) -> list[Problem]:
    """Every shape of SHAPES for every seed."""
    return [make_problem(cell, T, B, sizes, seed + n)
            for n in range(len(SEEDS)) for T, B, sizes in SHAPES]


def derived(derivation, problem: Problem) -> dict[str, np.ndarray]:
    """What the derivation computes on `problem`, keyed like `usercode.Runner.run`."""
    cell, p = derivation.cell, problem
    hs, stateT, grads, dxs, dstate0, _ = run(derivation, p.params, p.xs, p.state0, p.dhs, p.dstateT)
    if not cell.recurrent:
        return {"y": hs[0], "x": dxs[0], **grads}
    out = {"hs": hs, **{f"{s}_T": stateT[s] for s in cell.state_names}, "xs": dxs}
    out.update({f"{s}_0": dstate0[s] for s in cell.state_names})
    out.update(grads)
    return out


def finite_derived(derivation, problem: Problem) -> dict[str, np.ndarray]:
    """`derived`, or a DeriveError naming the first value that is NaN or inf."""
    with np.errstate(all="ignore"):
        want = derived(derivation, problem)
    for name, value in want.items():
        if not np.all(np.isfinite(value)):
            kind = "NaN" if np.isnan(value).any() else "inf"
            raise DeriveError(f"{derivation.cell.name}: cannot compare: the derivation itself is not "
                              f"finite ({kind} in {name}) at {problem.describe()}; the cell is not "
                              "defined at these random inputs")
    return want


def fitted(derivation, runner, problem: Problem) -> tuple[Problem, dict]:
    """(`problem` as the runner's code takes it, the derived values it can be checked on):
    code with a layout may do without parts of the contract (`checks.adapt.Contract`)."""
    contract = getattr(runner, "contract", None)
    if contract is None:
        return problem, finite_derived(derivation, problem)
    problem = contract.adjust(problem)
    skip = {row for row, _ in contract.unchecked}
    return problem, {k: v for k, v in finite_derived(derivation, problem).items() if k not in skip}


def forward_names(cell) -> tuple[str, ...]:
    """The rows that are forward outputs rather than gradients."""
    return ("hs", *(f"{s}_T" for s in cell.state_names)) if cell.recurrent else ("y",)


@dataclass
class Row:
    """One quantity over all problems: worst errors and the problems where it disagreed."""

    name: str
    forward: bool
    abs_err: float = 0.0
    rel_err: float = 0.0
    failures: list = field(default_factory=list)   # (problem, yours, derived)

    @property
    def agree(self) -> bool:
        return not self.failures


def close(got, want, rtol, atol) -> bool:
    """Same shape and |got - want| <= atol + rtol |want| everywhere (numpy.isclose's rule)."""
    return got.shape == want.shape and bool(np.all(np.abs(got - want) <= atol + rtol * np.abs(want)))


def errors(got, want) -> tuple[float, float]:
    """(max absolute error, that divided by max |want|); infinite for a wrong shape, NaN
    when either side is not finite."""
    if got.shape != want.shape:
        return float("inf"), float("inf")
    if not (np.all(np.isfinite(got)) and np.all(np.isfinite(want))):
        return float("nan"), float("nan")
    err = float(np.max(np.abs(got - want), initial=0.0))
    return err, err / max(float(np.max(np.abs(want), initial=0.0)), 1e-300)


@dataclass
class Comparison:
    """All rows, plus every run kept for the diagnosis."""

    cell: object
    rows: dict[str, Row]
    runs: list   # (problem, yours, derived)
    rtol: float = 1e-6
    atol: float = 1e-9
    tolerances: str = ""   # which tolerances were used and why, one line

    def disagreeing(self, forward: bool) -> list[str]:
        return [r.name for r in self.rows.values() if not r.agree and r.forward == forward]


def differing(got: dict, want: dict, rtol, atol) -> list[str]:
    """Names of the quantities that are not `close`."""
    return [name for name in want if name in got and not close(got[name], want[name], rtol, atol)]


# (rtol, atol) by the float dtype of the compared code's results: a few hundred units in the
# last place relative, and absolute errors of the values' own size (~1) times that, allowing
# for what rounding accumulates over the few steps and sums of the random problems
DTYPE_TOLERANCES = {"float64": (1e-6, 1e-9), "float32": (1e-4, 1e-5), "float16": (3e-2, 1e-2)}
DEFAULT_DTYPE = "float64"


def tolerances(dtypes, rtol=None, atol=None) -> tuple[float, float, str]:
    """(rtol, atol, one line saying which and why): each one not given explicitly (None)
    comes from the least precise float dtype among `dtypes` (float64 if none is known)."""
    known = [d for d in dtypes if d in DTYPE_TOLERANCES]
    dtype = max(known, key=lambda d: DTYPE_TOLERANCES[d]) if known else DEFAULT_DTYPE
    auto_rtol, auto_atol = DTYPE_TOLERANCES[dtype]
    why = (f"your results are {dtype}" if dtypes and len(set(dtypes)) == 1 and known
           else f"the least precise of your results ({', '.join(sorted(set(dtypes)))}) is {dtype}"
           if known else f"your results are {', '.join(sorted(set(dtypes)))}, compared as float64"
           if dtypes else "float64")
    given = [n for n, v in (("--rtol", rtol), ("--atol", atol)) if v is not None]
    rtol = auto_rtol if rtol is None else rtol
    atol = auto_atol if atol is None else atol
    if len(given) == 2:
        return rtol, atol, f"tolerances: rtol {rtol:g}, atol {atol:g} (given by --rtol and --atol)"
    reason = f"{why}, so the {dtype} defaults"
    reason += f"; {given[0]} as given" if given else "; --rtol/--atol override"
    return rtol, atol, f"tolerances: rtol {rtol:g}, atol {atol:g} ({reason})"


def compare(derivation, runner, rtol=None, atol=None, seed=0) -> Comparison:
    """Run both sides on every problem and tabulate the errors.  A tolerance left None is
    chosen by the float dtype of what the runner's code returned (`tolerances`)."""
    cell = derivation.cell
    fwd = set(forward_names(cell))
    rows, runs = {}, []
    for problem in problems(cell, seed):
        problem, want = fitted(derivation, runner, problem)
        got = runner.run(problem, expected_shapes(cell, problem))
        runs.append((problem, got, want))
    rtol, atol, why = tolerances(sorted(getattr(runner, "dtypes", ())), rtol, atol)
    for problem, got, want in runs:
        for name, ref in want.items():
            row = rows.setdefault(name, Row(name, name in fwd))
            a, r = errors(got[name], ref)
            row.abs_err, row.rel_err = worst((row.abs_err, a)), worst((row.rel_err, r))
            if not close(got[name], ref, rtol, atol):
                row.failures.append((problem, got[name], ref))
    return Comparison(cell, rows, runs, rtol, atol, why)


def expected_shapes(cell, problem: Problem) -> dict[str, tuple[int, ...]]:
    """The shape of every quantity the user's code returns, for `usercode.Runner`."""
    sz, vs = problem.sizes, cell.sizes()
    shapes = {name: tuple(sz[s] for s in shape) for name, shape in cell.params()}
    B, T = problem.B, problem.T
    if not cell.recurrent:
        shapes.update(y=(B, sz[vs[cell.output]]), x=(B, sz[vs[cell.input_names[0]]]))
        return shapes
    shapes.update(hs=(T, B, sz[vs[cell.output]]), xs=(T, B, sz[vs[cell.input_names[0]]]))
    for s, n in cell.state:
        shapes[f"{s}_T"] = shapes[f"{s}_0"] = (B, sz[n])
    return shapes


def table(comparison: Comparison, rtol, atol, label="yours") -> list[str]:
    """One line per quantity: worst errors over all runs and the verdict."""
    lines = [f"{'quantity':<12}{'max abs err':>14}{'max rel err':>14}  verdict ({label} vs derived, "
             f"{len(comparison.runs)} runs, rtol {rtol:g}, atol {atol:g})"]
    for row in comparison.rows.values():
        name = f"{row.name} (fwd)" if row.forward else row.name
        verdict = "ok" if row.agree else "DIFFERS"
        lines.append(f"{name:<12}{row.abs_err:>14.2e}{row.rel_err:>14.2e}  {verdict}")
    return lines
