"""What `docker build` sees of the repository (.dockerignore): the code the image needs, never a dump, a
backup or an .env left in the folder (the README's backup steps once wrote `imagery.dump` right here).

The patterns are applied by docker-py's implementation of Docker's own rules (`docker.utils.build`), to a
tree made of every tracked file plus the things an operator leaves lying around.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from docker.utils.build import exclude_paths

ROOT = Path(__file__).resolve().parent.parent

LEFT_LYING_AROUND = [
    "imagery.dump",
    "backup/imagery/images/3f/a1/3fa1.jpg",
    "backups/imagery-2026-12-07.dump",
    "images/imagery.dump",
    "db.sql.gz",
    ".env",
    ".env.production",
    "deploy/.env",
    "config/.env.local",
    "data/db.sqlite3",
    "data/media/images/3f/a1/3fa1.jpg",
    "images/db.sqlite3",
    ".venv/bin/python",
    "node_modules/thumbhash/thumbhash.js",
    "gallery/static/gallery/vendor/thumbhash/thumbhash.js",
    "gallery/static/gallery/vendor/tus-js-client/tus.min.js",
    "api/__pycache__/auth.cpython-311.pyc",
    "bench/out/chaos/chaos-60s.json",
    ".git/config",
    "notes.txt",
    "imagery-backup.tar.gz",
]


def tracked_files() -> list[str]:
    done = subprocess.run(  # a fixed command in our own repository
        ["git", "ls-files"],  # noqa: S607
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip("not a git checkout")
    return [name for name in done.stdout.splitlines() if (ROOT / name).is_file()]


@pytest.fixture(scope="module")
def context(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """The files `docker build` would send from a tree of the tracked files and those left lying around."""
    tree = tmp_path_factory.mktemp("context")
    for name in [*tracked_files(), *LEFT_LYING_AROUND]:
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        (tree / name).write_text("x")
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    # Despite its name, docker-py's exclude_paths answers what is sent: every path the patterns keep.
    sent = exclude_paths(str(tree), patterns, dockerfile="deploy/Dockerfile")
    return {name for name in sent if (tree / name).is_file()}


@pytest.mark.parametrize("name", LEFT_LYING_AROUND)
def test_nothing_left_lying_around_reaches_the_image(context: set[str], name: str) -> None:
    assert name not in context


def test_every_file_the_dockerfile_names_is_there(context: set[str]) -> None:
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    for name in ["requirements/base.txt", "package.json", "package-lock.json", "manage.py"]:
        assert name in dockerfile
        assert name in context
    for name in ["deploy/entrypoint.sh", "deploy/gunicorn.conf.py"]:
        assert name in context


def test_every_app_of_ours_is_there(context: set[str]) -> None:
    # A top-level package (a folder with __init__.py) that is not tests or benchmarks is code the app runs:
    # an allow-list that forgets a new one builds an image that fails at start.
    packages = {
        name.split("/")[0]
        for name in tracked_files()
        if name.count("/") == 1
        and name.endswith("/__init__.py")
        and not name.startswith(("tests/", "bench/"))
    }
    assert packages >= {"api", "config", "images", "gallery"}
    for name in tracked_files():
        if name.split("/")[0] in packages and not name.endswith(".pyc"):
            assert name in context, f"{name} is code the image needs: allow its folder in .dockerignore"


def test_no_tests_benchmarks_docs_or_development_tools(context: set[str]) -> None:
    top = {name.split("/")[0] for name in context}
    assert not top & {"tests", "bench", "docs", ".ci", ".git", ".venv", "data", "node_modules"}
    assert {name for name in context if name.startswith("requirements/")} == {"requirements/base.txt"}
