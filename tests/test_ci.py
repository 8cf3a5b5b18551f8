"""CI runs exactly the test command the README shows, after installing what the README installs."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def readme_command(label: str) -> str:
    """The command in the README's fenced block right after ``<!-- LABEL -->``."""
    readme = (ROOT / "README.md").read_text()
    match = re.search(rf"<!-- {label} -->\s*```(?:bash|sh)?\n(.+?)\n```", readme, re.S)
    assert match, f"README.md has no fenced command after <!-- {label} -->"
    return match.group(1).strip()


def ci_commands() -> list[str]:
    lines = (ROOT / ".ci" / "run").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def test_ci_runs_the_readme_test_command_last() -> None:
    assert ci_commands()[-1] == readme_command("test-command")


def test_ci_installs_what_the_readme_installs() -> None:
    install = readme_command("install-command").splitlines()[-1]  # the pip line, after the venv lines
    assert install in ci_commands()
