"""The README's set-up: two commands, a virtual environment first, an editable install so
that `lstm-derive`, `python -m derive` and the tests all run this source folder."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT

README = (ROOT / "README.md").read_text()


def setup_commands() -> list[str]:
    section = README.split("## Two commands", 1)[1].split("\n## ", 1)[0]
    return [block.strip() for block in re.findall(r"```\n(.*?)```", section, flags=re.S)]


def test_the_readme_sets_up_in_two_commands_in_a_virtual_environment():
    commands = setup_commands()
    assert len(commands) == 2 and all("\n" not in c for c in commands), commands
    install, tests = commands
    assert install.startswith("python3 -m venv .venv && . .venv/bin/activate && ")
    assert 'pip install -e ".[docs]"' in install and install.endswith("&& lstm-derive build")
    grep = re.search(r"grep -m1 '([^']+)' README\.md", (ROOT / ".ci" / "run").read_text()).group(1)
    assert [line for line in README.splitlines() if re.match(grep, line)] == [tests]   # what CI runs
    assert tests.startswith('pip install -e ".[test]"') and tests.endswith("&& python -m pytest -q")


def test_the_installed_package_is_this_source_folder(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    found = subprocess.run([sys.executable, "-c", "import lstm_derive; print(lstm_derive.__file__)"],
                           cwd=tmp_path, env=env, capture_output=True, text=True)
    if "ModuleNotFoundError" in found.stderr:
        pytest.skip("lstm-derive is not installed in this environment")
    where = Path(found.stdout.strip()).resolve()
    assert where.is_relative_to(ROOT), (
        f"lstm-derive runs {where}, not this folder's source: install it editable (README)")
