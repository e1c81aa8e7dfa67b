"""Jinja2 environments for the templates in this folder.

Python templates use Jinja's usual delimiters; LaTeX templates use `\\BLOCK{}`,
`\\VAR{}` and `\\#{}` because braces and `%` mean something in LaTeX.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import jinja2

_HERE = Path(__file__).parent
_COMMON = dict(loader=jinja2.FileSystemLoader(str(_HERE)), undefined=jinja2.StrictUndefined,
               trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
               autoescape=False)
_LATEX = dict(block_start_string=r"\BLOCK{", block_end_string="}",
              variable_start_string=r"\VAR{", variable_end_string="}",
              comment_start_string=r"\#{", comment_end_string="}",
              line_statement_prefix=None, line_comment_prefix=None)


@lru_cache(maxsize=None)
def _environment(latex: bool) -> jinja2.Environment:
    return jinja2.Environment(**_COMMON, **(_LATEX if latex else {}))


def render(name: str, **context) -> str:
    return _environment(name.endswith(".tex.j2")).get_template(name).render(**context)
