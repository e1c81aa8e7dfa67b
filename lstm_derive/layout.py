"""Lay out a stage graph with Graphviz's `dot`, or read the layout it made before.

`Layouts(folders).get(name, dot)` returns the `Layout` of the DOT text `dot`: the stored
one, `<folder>/<name>.json`, when its recorded hash equals the hash of `dot` (so a user
without Graphviz builds the committed cells), else a fresh one from `dot -Tplain`.  `dot`
runs without a shell, with fixed flags and a time limit; coordinates are rounded to 0.01 pt,
so a stored layout is stable text.  When the stored layout is stale and `dot` is missing or
fails, the error is one line naming Graphviz and how to install it.
"""
from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

from codegen.layout import Layout, from_json, from_plain
from derive.errors import DeriveError

DOT_FLAGS = ("-Tplain",)
TIMEOUT = 60          # seconds: our graphs take well under one
INSTALL = "install Graphviz (e.g. `apt-get install graphviz` or `brew install graphviz`)"
ROOT = Path(__file__).resolve().parents[1]
STORED = (ROOT / "generated" / "layout", ROOT / "examples" / "layout")   # the committed layouts


def key(dot: str) -> str:
    return hashlib.sha256(dot.encode("utf-8")).hexdigest()


class Layouts:
    """The layouts of one build: looked up in `folders` (in order), made by `dot` otherwise."""

    def __init__(self, folders=()):
        self.folders = tuple(dict.fromkeys([*map(Path, folders), *STORED]))

    def stored(self, name: str, dot: str) -> Layout | None:
        """The stored layout of `name` made from exactly this DOT text, if there is one."""
        for folder in self.folders:
            try:
                layout = from_json((folder / f"{name}.json").read_text(encoding="utf-8"))
            except (OSError, ValueError, KeyError, TypeError):
                continue
            if layout.key == key(dot):
                return layout
        return None

    def get(self, name: str, dot: str) -> Layout:
        return self.stored(name, dot) or run_dot(name, dot)


def run_dot(name: str, dot: str) -> Layout:
    """A fresh layout from Graphviz; one-line DeriveError when it cannot be made."""
    program = shutil.which("dot")
    if program is None:
        raise DeriveError(f"the stage graph of {name} has no stored layout for its current "
                          f"form and Graphviz's `dot` is not installed: {INSTALL}")
    try:
        done = subprocess.run([program, *DOT_FLAGS], input=dot, capture_output=True, text=True,
                              timeout=TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise DeriveError(f"Graphviz's `dot` failed on the stage graph of {name}: {err}") from None
    if done.returncode != 0:
        first = (done.stderr.strip().splitlines() or ["no message"])[0]
        raise DeriveError(f"Graphviz's `dot` failed on the stage graph of {name}: {first}")
    return from_plain(done.stdout, key(dot))
