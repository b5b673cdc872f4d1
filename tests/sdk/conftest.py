"""Fixtures for the SDK's tests: a virtual environment holding the SDK alone."""

from __future__ import annotations

import re
import subprocess
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _constraints(tmp: Path) -> Path:
    """The server's exact pins as pip constraints, so the SDK venv gets the versions the
    server is tested with (and pip's cache serves them)."""
    pins = [
        line
        for line in (ROOT / "requirements.txt").read_text().splitlines()
        if re.match(r"^[A-Za-z0-9_.\[\],-]+==", line)
    ]
    path = tmp / "constraints.txt"
    path.write_text("\n".join(re.sub(r"\[.*?\]", "", pin) for pin in pins) + "\n")
    return path


@pytest.fixture(scope="session")
def sdk_python(tmp_path_factory) -> Path:
    """The interpreter of a fresh virtual environment with `pip install ./sdk` and nothing
    else: no Django, none of the server's code. Built once per test session."""
    home = tmp_path_factory.mktemp("sdk-venv")
    venv.EnvBuilder(with_pip=True).create(home / "venv")
    python = home / "venv" / "bin" / "python"
    subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-c",
            str(_constraints(home)),
            str(ROOT / "sdk"),
        ],
        check=True,
        cwd=home,
        timeout=900,
    )
    return python
