"""The `lstm-derive` command line (also `python -m derive`).

Exit codes: 0 success; 1 a check found a problem (gradient mismatch, generated files out
of date); 2 a usage or input error, reported on one line.  Run as a program, an
unexpected exception (a bug in lstm-derive) is one line too, with exit 2; called as
`main([...])` (the tests) it propagates, and LSTM_DERIVE_DEBUG=1 shows it as well.
Long work (deriving, rendering) says what it is doing on stderr when that is a terminal.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

from catalogue.cells import CELLS, get_entry
from catalogue.spec import load_spec
from checks.layout import PRESETS
from derive.derivation import derive
from derive.errors import DeriveError
from lstm_derive.rebuild import DEFAULT_OUT

CHECK_SHAPES = ((3, 2, 4, 3, 2), (1, 1, 3, 2, 3), (2, 3, 2, 5, 4))  # T, B, then sizes in order


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line instead of usage + message
        raise DeriveError(f"{message} (see `{self.prog} --help`)")


def resolve(arg: str):
    """The catalogue entry of a built-in cell by name, or of a spec file (a path or a name
    ending .toml); its `.cell` is the mathematics."""
    if arg.endswith(".toml") or "/" in arg or "\\" in arg:
        entry, warnings = load_spec(arg)
        if entry.name in CELLS:   # its files would replace the built-in cell's in generated/
            raise DeriveError(f"{arg}: the spec's name {entry.name!r} is a built-in cell's; choose another")
        for warning in warnings:
            print(f"lstm-derive: warning: {warning}", file=sys.stderr)
        return entry
    return get_entry(arg)


def main(argv=None) -> int:
    try:
        args = _parser().parse_args(argv)
        return args.run(args)
    except DeriveError as err:
        print(f"lstm-derive: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("lstm-derive: interrupted", file=sys.stderr)
        return 130
    except SystemExit as done:   # --help and --version
        return done.code if isinstance(done.code, int) else 0
    except BrokenPipeError:   # `lstm-derive ... | head`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except ModuleNotFoundError as err:   # a dependency this environment lacks, not a bug
        if argv is not None or os.environ.get("LSTM_DERIVE_DEBUG"):
            raise
        print(f"lstm-derive: error: the package {err.name!r} is not installed here; install "
              f"lstm-derive with its dependencies (README: pip install -e \".[docs]\")", file=sys.stderr)
        return 2
    except Exception as err:  # noqa: BLE001 - a bug of ours, not the user's input
        if argv is not None or os.environ.get("LSTM_DERIVE_DEBUG"):
            raise
        text = (str(err).strip().splitlines() or [""])[0][:200]
        print(f"lstm-derive: internal error (a bug in lstm-derive; LSTM_DERIVE_DEBUG=1 shows where): "
              f"{type(err).__name__}: {text}", file=sys.stderr)
        return 2


def progress(message: str) -> None:
    """What long work is doing, for a person watching a terminal (never into pipes or logs)."""
    if sys.stderr.isatty():
        print(f"lstm-derive: {message} ...", file=sys.stderr, flush=True)


def _at_least(low, kind=float, strict=False):
    """An argparse type: a finite number >= low (> low if strict); argparse names the option."""
    def convert(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {'an integer' if kind is int else 'a number'}, "
                                             f"got {text!r}") from None
        if not math.isfinite(value) or value < low or (strict and value == low):
            raise argparse.ArgumentTypeError(f"must be {'>' if strict else '>='} {low}, got {text}")
        return value
    return convert


SEED, TOLERANCE, SECONDS = _at_least(0, int), _at_least(0), _at_least(0, strict=True)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return f"lstm-derive {version('lstm-derive')}"
    except PackageNotFoundError:
        return "lstm-derive (not installed: running from the source folder)"


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="lstm-derive", description="Derive, document, generate and check "
                     "the gradients of recurrent cells, stage by stage.")
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    p = sub.add_parser("list", help="list the available cells")
    p.set_defaults(run=_list)
    cell_help = "a built-in cell name (see `list`) or the path of a .toml spec file"
    p = sub.add_parser("show", help="print a cell's derivation, one stage or step per line")
    p.add_argument("cell", help=cell_help)
    p.set_defaults(run=_show)
    p = sub.add_parser("build", help="regenerate every cell's module and document (and PDF)")
    p.add_argument("--out", type=Path, help="output folder (default: generated); the examples are "
                   "then built only with --examples, into OUT/examples")
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 if files differ")
    p.add_argument("--no-pdf", action="store_true", help="skip the PDFs")
    p.add_argument("--examples", type=Path, help="folder of example specs, rendered next to them "
                   "(default: examples, when there is one)")
    p.set_defaults(run=_build)
    _render_parsers(sub, cell_help)
    _compare_parser(sub, cell_help)
    return parser


def _render_parsers(sub, cell_help):
    """latex, html, code and check: the commands that render or check one cell."""
    p = sub.add_parser("latex", help="write a cell's LaTeX document (and PDF with --pdf)")
    p.add_argument("cell", help=cell_help)
    p.add_argument("--out", type=Path, help="output .tex path (default: generated/CELL.tex)")
    p.add_argument("--pdf", action="store_true", help="also compile the PDF next to it")
    p.set_defaults(run=_latex)
    p = sub.add_parser("html", help="write a cell's derivation as one self-contained HTML page")
    p.add_argument("cell", help=cell_help)
    p.add_argument("--out", type=Path, help="output .html path (default: generated/CELL.html)")
    p.set_defaults(run=_html)
    p = sub.add_parser("code", help="write a cell's standalone module (NumPy; PyTorch or JAX with --target torch, jax)")
    p.add_argument("cell", help=cell_help)
    p.add_argument("--target", choices=("numpy", "torch", "jax"), default="numpy",
                   help="the framework of the module (default numpy)")
    p.add_argument("--out", type=Path, help="output .py path (default: generated/CELL.py, "
                                             "generated/torch/CELL.py, generated/jax/CELL.py)")
    p.set_defaults(run=_code)
    p = sub.add_parser("check", help="compare a cell's generated gradients with finite differences")
    p.add_argument("cell", help=cell_help)
    p.add_argument("--seed", type=SEED, default=0)
    p.add_argument("--tol", type=TOLERANCE, default=1e-6, help="largest relative error accepted")
    p.set_defaults(run=_check)


COMPARE_HELP = """Compare hand-written gradients with the derived ones.

--against PATH_OR_MODULE imports a .py file or a dotted module (importing is all that is
done with it besides calling its functions), in a separate Python process that may run
for --timeout seconds in all, with the contract of the generated module:
forward(params, xs, state0=None) -> (hs, stateT, cache) and
backward(params, cache, dhs, dstateT=None) -> (grads, dxs, dstate0), the same parameter
names, (T, B, D) inputs and (B, size) state dicts; for mlp and mlp_softmax
forward(params, x) -> (y, cache) and backward(params, cache, dy) -> (grads, dx).
--against torch uses PyTorch autograd (lstm, gru_reset_after, rnn, lstmp).
Code in another style (step functions, stacked gate weights, other array axes) is
called through a layout: --layout PRESET or LAYOUT = ... in the file (README).

--formula "NAME = EXPRESSION" checks one backward quantity of one step; the names are
those `lstm-derive show CELL` lists (at most 2000 characters, numbers up to 1e15, ** by
a number of at most 16).  Exit 0 when everything agrees, 1 when something differs, 2 for
bad input, an error inside the compared code, or a formula that cannot be checked."""


def _compare_parser(sub, cell_help):
    p = sub.add_parser("compare", help="compare hand-written gradient code or formulas with the derived ones",
                       description=COMPARE_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("cell", help=cell_help)
    p.add_argument("--against", metavar="PATH_OR_MODULE", help="a .py path, a dotted module name, or torch")
    p.add_argument("--formula", action="append", default=[], metavar="'NAME = EXPRESSION'",
                   help="a hand-written formula for one backward quantity (repeatable)")
    p.add_argument("--formulas", type=Path, metavar="FILE", help="formulas, one per line, # comments")
    p.add_argument("--rtol", type=TOLERANCE, default=None,
                   help="relative tolerance (default by the dtype of your results: "
                        "1e-6 for float64, 1e-4 for float32)")
    p.add_argument("--atol", type=TOLERANCE, default=None,
                   help="absolute tolerance (default by the dtype of your results: "
                        "1e-9 for float64, 1e-5 for float32)")
    p.add_argument("--layout", metavar="PRESET", default=None,
                   help="how --against code lays out parameters and arrays: " + ", ".join(PRESETS)
                        + " (or LAYOUT = ... in the file; see README)")
    p.add_argument("--seed", type=SEED, default=0)
    p.add_argument("--timeout", type=SECONDS, default=60.0, metavar="SECONDS",
                   help="how long --against code may run in all, import included (default 60)")
    p.set_defaults(run=_compare)


def _list(args) -> int:
    for entry in CELLS.values():
        cell = entry.cell
        params = ", ".join(f"{n} ({'x'.join(s)})" for n, s in cell.params())
        state = f"state {', '.join(cell.state_names)}" if cell.recurrent else "no state"
        print(f"{cell.name:<16}{entry.description}\n{'':<16}{state}; parameters {params}")
    return 0


def _show(args) -> int:
    from checks.formula import formula_names
    derivation = derive(resolve(args.cell).cell)
    print(derivation)
    print(formula_names(derivation))
    return 0


def _build(args) -> int:
    from lstm_derive import rebuild
    found = rebuild.targets(args.out, args.examples, resolve)
    if args.check:
        return rebuild.report_drift(found)
    return rebuild.build(found, not args.no_pdf and _latex_available(), progress)


def _latex_available() -> bool:
    from lstm_derive.pdf import LATEX_HINT, latex_engine
    try:
        latex_engine()
        return True
    except DeriveError:
        print(f"PDFs skipped: {LATEX_HINT}")
        return False


def _render_one(args, suffix):
    """(all rendered, text, output path) of one artefact of the cell named on the command line."""
    from lstm_derive.build import Build
    entry = resolve(args.cell)
    build = Build(f"lstm-derive {args.command} {args.cell}")
    progress(f"deriving {entry.name} ({len(entry.cell.stages)} stages)")
    build.derivation(entry.cell)   # kept by the build: render reuses it
    progress(f"rendering {entry.name}{suffix}")
    rendered = build.render(entry, only=suffix)
    file_name = f"{entry.name}{suffix}"
    return rendered, rendered.files[file_name], args.out or DEFAULT_OUT / file_name


def _latex(args) -> int:
    from lstm_derive.files import write_text
    from lstm_derive.pdf import compile_pdf
    rendered, text, out = _render_one(args, ".tex")
    if args.pdf:
        compile_pdf(text, out.with_suffix(".pdf"), rendered.assets)
    write_text(out, text)
    print(f"wrote {out}" + (f" and {out.with_suffix('.pdf')}" if args.pdf else ""))
    return 0


def _write_one(args, suffix) -> int:
    from lstm_derive.files import write_text
    _, text, out = _render_one(args, suffix)
    write_text(out, text)
    print(f"wrote {out}")
    return 0


def _html(args) -> int:
    return _write_one(args, ".html")


def _code(args) -> int:
    if args.target == "numpy":
        return _write_one(args, ".py")
    from lstm_derive.build import render_cell
    from lstm_derive.files import write_text
    entry = resolve(args.cell)
    cell = entry.cell
    if not cell.recurrent:
        raise DeriveError(f"{cell.name} is not recurrent; the {args.target} target writes recurrent cells")
    text = render_cell(entry, f"lstm-derive code {args.cell} --target {args.target}", only=args.target)
    out = args.out or DEFAULT_OUT / args.target / f"{cell.name}.py"
    write_text(out, text[f"{args.target}/{cell.name}.py"])
    print(f"wrote {out}")
    return 0


def _check(args) -> int:
    from lstm_derive.build import render_cell
    from checks.gradcheck import check_report, load_module, worst
    entry = resolve(args.cell)
    cell = entry.cell
    module = load_module(render_cell(entry, only=".py")[f"{cell.name}.py"], cell.name)
    recurrent = hasattr(module, "STATE")
    head = ("T,B," if recurrent else "B,") + ",".join(module.SIZES)
    print(f"{head:<14}{'gradient':<12}{'rel. error':>12}")
    errors, broken = [], []
    for T, B, *dims in CHECK_SHAPES:
        dims = dims[:len(module.SIZES)]
        shape = ",".join(map(str, ([T] if recurrent else []) + [B] + dims))
        found, notes = check_report(module, T, B, *dims, seed=args.seed)
        for grad, err in found.items():
            errors.append(err)
            broken += [f"{grad} at {head} = {shape} ({notes[grad]})"] if grad in notes else []
            flag = (f"  <-- not finite: {notes[grad]}" if grad in notes
                    else "" if err <= args.tol else "  <-- above tolerance")
            print(f"{shape:<14}{grad:<12}{err:>12.2e}{flag}")
    largest = worst(errors)
    agree = largest <= args.tol   # False for NaN
    verdict = "agree" if agree else "DISAGREE"
    why = f": {len(broken)} gradient(s) not finite, first {broken[0]}" if broken else ""
    print(f"{cell.name}: generated gradients and finite differences {verdict}{why} "
          f"(max relative error {largest:.2e}, tolerance {args.tol:.0e})")
    return 0 if agree else 1


def _compare(args) -> int:
    from checks.formula import MAX_FORMULAS, read_formulas
    from checks.formulacheck import check_formulas
    entry = resolve(args.cell)
    formulas = [("--formula", f) for f in args.formula]
    formulas += read_formulas(args.formulas) if args.formulas else []
    if len(formulas) > MAX_FORMULAS:   # each may take SymPy a few seconds
        raise DeriveError(f"{len(formulas)} formulas, at most {MAX_FORMULAS} in one run")
    if not args.against and not formulas:
        raise DeriveError("compare needs --against PATH_OR_MODULE, --formula or --formulas")
    derivation = derive(entry.cell)
    if args.layout and not entry.cell.recurrent:
        raise DeriveError(f"--layout describes recurrent code; {entry.cell.name} is not recurrent")
    status = _compare_code(derivation, entry, args) if args.against else 0
    if formulas:
        status = max(status, check_formulas(derivation, formulas, print))
    return status


def _compare_code(derivation, entry, args) -> int:
    from checks.runner import ChildRunner
    if args.against == "torch":   # our own reference: it runs here
        from checks.torchref import torch_module
        from checks.usercode import Runner
        runner = Runner(torch_module(derivation.cell, entry.torch), args.against, derivation.cell)
        return _compare_with(derivation, args, runner, "torch")
    with ChildRunner(args.against, derivation.cell, args.timeout, args.layout) as runner:
        return _compare_with(derivation, args, runner, "yours")


def _compare_with(derivation, args, runner, label) -> int:
    from checks.compare import compare, table
    from checks.diagnose import diagnose
    cell = derivation.cell
    comparison = compare(derivation, runner, args.rtol, args.atol, args.seed)
    rtol, atol = comparison.rtol, comparison.atol
    print("\n".join(table(comparison, rtol, atol, label)))
    print(comparison.tolerances)
    contract = getattr(runner, "contract", None)
    for note in contract.notes() if contract is not None else ():
        print(note)
    if all(row.agree for row in comparison.rows.values()):
        skipped = len(contract.unchecked) if contract is not None else 0
        print(f"{cell.name}: {args.against} and the derivation agree"
              + (f" on everything compared ({skipped} not checked, listed above)" if skipped else ""))
        return 0
    print(f"{cell.name}: {args.against} and the derivation DISAGREE")
    print("\n".join(diagnose(comparison, derivation, runner, rtol, atol)))
    return 1
