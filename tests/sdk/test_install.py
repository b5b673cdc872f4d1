"""The SDK installs on its own (`pip install ./sdk`) and imports nothing of the server.

The static side of the contract is import-linter's (`make lint`: the SDK imports no Django and
nothing of core, teleop or evaluation); these tests check the installed package at run time,
in a virtual environment that has no Django at all. The robot quickstart run from that
environment against a live server is in `tests/sdk/test_client.py`.
"""

from __future__ import annotations

import json
import pkgutil
import subprocess

import pytest

import proving_ground

pytestmark = pytest.mark.slow

#: What the optional extras bring (`replay`, `export`, `stats`): a module may need these, and
#: only these, beyond the base install.
EXTRAS = {"rerun", "pyarrow", "av", "scipy"}

IMPORT_EVERY_MODULE = """
import importlib, json, sys
results = {}
for name in json.loads(sys.argv[1]):
    try:
        importlib.import_module(name)
        results[name] = None
    except ModuleNotFoundError as exc:
        results[name] = exc.name
server = sorted(m for m in sys.modules if m.split(".")[0] in
                {"django", "rest_framework", "core", "teleop", "evaluation"})
print(json.dumps({"results": results, "server": server,
                  "django_installed": importlib.util.find_spec("django") is not None}))
"""


def _sdk_modules() -> list[str]:
    return sorted(
        info.name
        for info in pkgutil.walk_packages(proving_ground.__path__, "proving_ground.")
        if not info.name.endswith("__main__")
    )


def test_every_sdk_module_imports_without_django_or_the_server(sdk_python, tmp_path):
    modules = _sdk_modules()
    assert "proving_ground.client.api" in modules and "proving_ground.episode.writer" in modules
    done = subprocess.run(
        [str(sdk_python), "-c", IMPORT_EVERY_MODULE, json.dumps(modules)],
        cwd=tmp_path,  # not the checkout: only what pip installed is importable
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    answer = json.loads(done.stdout)
    assert answer["django_installed"] is False
    assert answer["server"] == []
    missing = {name: dep for name, dep in answer["results"].items() if dep is not None}
    # Only the extras may be missing, and the base of the SDK needs none of them.
    assert {dep.split(".")[0] for dep in missing.values()} <= EXTRAS, missing
    for base in (
        "proving_ground.client.api",
        "proving_ground.client.outbox",
        "proving_ground.client.cli",
        "proving_ground.episode.writer",
        "proving_ground.episode.reader",
        "proving_ground.episode.validate",
        "proving_ground.criteria.spec",
        "proving_ground.criteria.parsing",
        "proving_ground.criteria.automatic_checks",
        "proving_ground.checks",
        "proving_ground.files",
    ):
        assert base not in missing, (base, missing.get(base))


def test_the_sdk_commands_are_installed(sdk_python, tmp_path):
    bin_dir = sdk_python.parent
    for command in ("proving-ground", "pg-episode-validate"):
        done = subprocess.run(
            [str(bin_dir / command), "--help"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        assert "usage:" in done.stdout
