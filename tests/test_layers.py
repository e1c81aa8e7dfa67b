"""The package's layers, read from the source: data flows one way.

The import graph of every module of our packages (every `import` and `from ... import`,
inside functions too) has no cycle, and each package imports only the layers below it:

    derive       nothing of ours (derive/__main__.py, the `python -m derive` program, is exempt)
    catalogue    derive
    checks       derive, catalogue
    codegen      derive, catalogue
    lstm_derive  anything (it sequences the work)

Renderers render what they are handed: nothing under codegen/ derives, computes Jacobians,
builds output heads or runs code (no `derive`, `state_jacobians`, `output_heads`, `exec`,
`compile`, `types.ModuleType`, nor importing a module by its name), only the NumPy-module
emitters import each other, and compiling a PDF does not need the HTML emitter.  The checkers are tested on tiny synthetic
graphs and sources, so they are seen to fail.
"""
from __future__ import annotations

import ast
from pathlib import Path

from conftest import ROOT

PACKAGES = ("derive", "catalogue", "checks", "codegen", "lstm_derive")
ALLOWED = {"derive": set(), "catalogue": {"derive"}, "checks": {"derive", "catalogue"},
           "codegen": {"derive", "catalogue"}, "lstm_derive": set(PACKAGES)}
EXEMPT = {"derive.__main__"}   # the command-line program, not the library
EMITTER_FAMILY = {"codegen.emit_numpy", "codegen.emit_backward", "codegen.plan",
                  "codegen.inplace", "codegen.emit_feedforward"}
FORBIDDEN_CALLS = {"derive", "state_jacobians", "output_heads", "exec", "compile", "ModuleType",
                   "__import__", "import_module", "exec_module"}


def our_modules(root: Path = ROOT) -> dict[str, Path]:
    """Dotted module name -> file, for every module of our packages (a package is its __init__)."""
    found = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imported(name: str, source: str, known) -> set[str]:
    """Our modules that the module `name` imports anywhere in `source`."""
    package = name if known[name].name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out |= {_ours(alias.name, known) for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:   # relative: from the module's package, `level - 1` further up
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:   # `from codegen import figures` imports a module
                sub = f"{base}.{alias.name}"
                out.add(sub if sub in known else _ours(base, known))
    return out - {None, name}


def _ours(dotted: str, known) -> str | None:
    """The longest prefix of `dotted` that is one of our modules."""
    parts = dotted.split(".")
    for n in range(len(parts), 0, -1):
        if ".".join(parts[:n]) in known:
            return ".".join(parts[:n])
    return None


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    known = our_modules(root)
    return {name: imported(name, path.read_text(encoding="utf-8"), known)
            for name, path in known.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle [a, b, ..., a] in the graph, or None (depth-first search, three colours)."""
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    """`module -> imported` for every import of a package the importer's layer may not use."""
    bad = []
    for name, targets in sorted(graph.items()):
        layer = name.split(".")[0]
        if name in EXEMPT:
            continue
        bad += [f"{name} -> {t}" for t in sorted(targets)
                if t.split(".")[0] != layer and t.split(".")[0] not in ALLOWED[layer]]
    return bad


def forbidden_calls(source: str) -> list[str]:
    """Calls (or imports) of the functions a renderer must not use: `derive(...)`,
    `jacobians.state_jacobians(...)`, `exec(...)`, `types.ModuleType(...)`...
    A method such as `re.compile` is allowed: only builtins `exec`/`compile` count."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name) and func.id in FORBIDDEN_CALLS:
                found.append(f"line {node.lineno}: {func.id}(...)")
            elif isinstance(func, ast.Attribute) and func.attr in FORBIDDEN_CALLS - {"exec", "compile"}:
                found.append(f"line {node.lineno}: .{func.attr}(...)")
        elif isinstance(node, ast.ImportFrom):
            found += [f"line {node.lineno}: imports {a.name}" for a in node.names
                      if a.name in FORBIDDEN_CALLS]
    return found


def reachable(graph, start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for nxt in graph.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


GRAPH = import_graph()


def test_the_graph_sees_every_module_and_imports_inside_functions():
    assert {"derive.derivation", "catalogue.entry", "codegen.document", "lstm_derive.build",
            "codegen.templates"} <= set(GRAPH)
    assert "checks.formula" in GRAPH["lstm_derive.cli"]        # imported inside _show()
    assert "codegen.figures" in GRAPH["codegen.emit_html"]     # `from codegen import figures`


def test_no_import_cycle():
    assert find_cycle(GRAPH) is None, " -> ".join(find_cycle(GRAPH))


def test_each_package_imports_only_the_layers_below_it():
    assert layer_violations(GRAPH) == []


def test_renderers_never_derive_or_run_code():
    bad = {name: found for name, path in our_modules().items() if name.startswith("codegen")
           if (found := forbidden_calls(path.read_text(encoding="utf-8")))}
    assert bad == {}


def test_only_the_module_emitters_import_the_module_emitters():
    bad = [f"{name} -> {t}" for name, targets in GRAPH.items()
           if name.startswith("codegen") and name not in EMITTER_FAMILY
           for t in targets & EMITTER_FAMILY]
    assert bad == []


def test_compiling_a_pdf_needs_no_renderer():
    assert "lstm_derive.pdf" in GRAPH
    assert not {m for m in reachable(GRAPH, "lstm_derive.pdf") if m.startswith("codegen.emit")}


# The checkers can fail: each rejects a small case built to break its rule.  (Run on the
# tree before issue 11, the renderer checks above fail too: codegen.flow exec'd the module
# that it imported codegen.emit_numpy to write, and emit_latex called derive().)

def test_the_cycle_finder_finds_a_cycle_and_accepts_a_chain():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "d": {"a", "c"}}) is None


def test_the_layer_check_rejects_imports_that_run_upwards():
    graph = {"derive.rules": {"catalogue.cells"}, "codegen.emit_latex": {"lstm_derive.build"},
             "checks.compare": {"codegen.figures", "derive.interpret"},
             "catalogue.cells": {"derive.stages"}, "derive.__main__": {"lstm_derive.cli"}}
    assert layer_violations(graph) == ["checks.compare -> codegen.figures",
                                       "codegen.emit_latex -> lstm_derive.build",
                                       "derive.rules -> catalogue.cells"]


def test_the_call_check_flags_deriving_and_running_code_but_not_regex_compile():
    source = ("import re, types\nfrom derive.derivation import derive\nPATTERN = re.compile('x')\n"
              "def f(cell, text):\n    module = types.ModuleType('m')\n"
              "    exec(compile(text, 'm', 'exec'), module.__dict__)\n    return derive(cell)\n")
    assert sorted(forbidden_calls(source)) == [
        "line 2: imports derive", "line 5: .ModuleType(...)", "line 6: compile(...)",
        "line 6: exec(...)", "line 7: derive(...)"]


def test_the_graph_resolves_relative_and_submodule_imports(tmp_path):
    (tmp_path / "codegen").mkdir()
    (tmp_path / "codegen" / "__init__.py").write_text("")
    (tmp_path / "codegen" / "a.py").write_text("from . import b\nfrom .b import thing\n")
    (tmp_path / "codegen" / "b.py").write_text("def f():\n    from codegen import a\n")
    for package in PACKAGES:
        (tmp_path / package).mkdir(exist_ok=True)
    graph = import_graph(tmp_path)
    assert graph["codegen.a"] == {"codegen.b"} and graph["codegen.b"] == {"codegen.a"}
    assert find_cycle(graph) == ["codegen.a", "codegen.b", "codegen.a"]


def test_a_build_derives_each_cell_once_and_measures_the_modules_it_rendered(monkeypatch):
    """The LSTM's derivation and the RNN's module serve every document that compares with
    them, yet each cell is derived once per build; the document is made from the module
    text the build rendered (what it writes to generated/)."""
    import lstm_derive.build as build
    from catalogue import get_entry
    calls, handed = [], []
    real = build.derive
    monkeypatch.setattr(build, "derive", lambda cell: calls.append(cell.name) or real(cell))
    monkeypatch.setattr(build, "make_document", lambda *args, **kwargs: handed.append(args))
    session = build.Build()
    for name in ("gru", "rnn", "lstm"):
        session.document(get_entry(name))
    assert sorted(calls) == ["gru", "lstm", "rnn"]
    entry, derivation, lstm, module, reference = handed[0]
    assert entry.name == "gru" and derivation is session.derivation(entry.cell)
    assert lstm is session.derivation(get_entry("lstm").cell)
    assert module == session.module(entry) and reference == ("rnn", session.module(get_entry("rnn")))
