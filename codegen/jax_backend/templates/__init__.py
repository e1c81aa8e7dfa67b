"""The JAX backend's templates: Jinja2 with the project's settings."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import jinja2


@lru_cache(maxsize=None)
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(Path(__file__).parent)),
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                             keep_trailing_newline=True, autoescape=False)
    env.filters.update(add_prev=lambda s: f"{s}_prev", d_next=lambda s: f"d_{s}_next")
    return env


def render(template: str, **context) -> str:
    return _environment().get_template(template).render(**context)
