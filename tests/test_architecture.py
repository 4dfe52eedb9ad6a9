"""docs/architecture.md stays the module map, and the import contracts cover every app.

The map: every Python module of an app (config/, api/, images/ with pixels/, gallery/) has its line in
the doc's "One job per module" section, and every module a line names exists. `__init__.py` files and
migrations are not modules of their own there; management commands are. The contracts: import-linter
analyses only the packages `root_packages` names, so a new top-level app must be added there, or no
contract would see it.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "architecture.md"
# Top-level folders with Python that are not apps of the service.
NOT_APPS = {"tests", "bench", "deploy", "docs", "requirements", "node_modules", "data"}

# A bullet's head: the backticked `*.py` names before its first ": ".
_NAMED = re.compile(r"`([\w/]+\.py)`")


def apps() -> set[str]:
    """The top-level packages of the service."""
    return {
        p.parent.name
        for p in ROOT.glob("*/__init__.py")
        if p.parent.name not in NOT_APPS and not p.parent.name.startswith(".")
    }


def modules_on_disk() -> set[str]:
    """Every module of the apps, as `app/path.py`."""
    found = set()
    for app in apps():
        for path in (ROOT / app).rglob("*.py"):
            relative = path.relative_to(ROOT)
            if path.name == "__init__.py" or "migrations" in relative.parts:
                continue
            found.add(relative.as_posix())
    return found


def modules_in_doc(text: str) -> set[str]:
    """The modules the doc's per-app sections (`### app/ ...`) name, as `app/path.py`."""
    named = set()
    app = None
    for line in text.split("## One job per module", 1)[1].splitlines():
        if heading := re.match(r"### (\w+)/", line):
            app = heading.group(1)
        elif line.startswith("## "):
            app = None
        elif app and line.startswith("- "):
            head = line[2:].split(": ", 1)[0]
            named.update(f"{app}/{name}" for name in _NAMED.findall(head))
    return named


def test_every_module_of_the_apps_has_its_line_in_the_architecture_doc() -> None:
    missing = modules_on_disk() - modules_in_doc(DOC.read_text())
    assert not missing, f"docs/architecture.md has no line for: {sorted(missing)}"


def test_every_module_the_architecture_doc_names_exists() -> None:
    gone = modules_in_doc(DOC.read_text()) - modules_on_disk()
    assert not gone, f"docs/architecture.md names modules that do not exist: {sorted(gone)}"


def test_the_doc_reader_sees_lines_and_only_lines_of_app_sections() -> None:
    text = """intro `config/urls.py`
## One job per module
### images/ (the domain)
- `a.py`, `pixels/b.py`: two modules; `c.py` is only mentioned
  continued `d.py`
### gallery/
- `views.py`: the page
## Names
- `e.py`: not a section of an app
"""
    assert modules_in_doc(text) == {"images/a.py", "images/pixels/b.py", "gallery/views.py"}


def importlinter() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]


def test_the_import_contracts_analyse_every_app() -> None:
    assert set(importlinter()["root_packages"]) == apps()


def test_uploads_may_reach_no_module_of_images_but_services_selectors_and_serializers() -> None:
    # The contract lists what uploads may not import; a new module of images/ belongs on that list.
    # Serializers: an upload URL takes POST /images's fields (inherited) and answers its image object.
    (contract,) = [c for c in importlinter()["contracts"] if c["id"] == "uploads-through-services"]
    children = {
        p.stem if p.suffix == ".py" else p.name
        for p in (ROOT / "images").iterdir()
        if (p.suffix == ".py" and p.name != "__init__.py") or (p / "__init__.py").exists()
    }
    expected = {
        f"images.{name}" for name in children - {"services", "selectors", "serializers", "migrations"}
    }
    assert set(contract["forbidden_modules"]) == expected


def test_no_bench_script_shadows_a_standard_library_module() -> None:
    """`python bench/x.py` puts bench/ first on sys.path: a bench/queue.py would be the `queue` that Django,
    asgiref and concurrent.futures import, and every script that sets Django up would fail."""
    shadowing = sorted(
        path.name for path in (ROOT / "bench").glob("*.py") if path.stem in sys.stdlib_module_names
    )
    assert shadowing == []
