"""compose's s3-init (deploy/minio/setup.sh), run with a stand-in `mc` that records what it is asked.

No MinIO runs here: this checks what the script asks MinIO for (the bucket's anonymous policy, its
lifecycle, the app's user and policy), that it asks again safely, and that it stops on a real error.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
SETUP = ROOT / "deploy" / "minio" / "setup.sh"

# Records each call (its arguments, any file it names, its stdin for `ilm rule import`); `policy attach`
# answers as MinIO does when the policy is attached already, when ATTACHED is set.
FAKE_MC = r"""#!/bin/sh
log=$MC_LOG
{
  printf 'CALL'
  for arg in "$@"; do printf '\t%s' "$arg"; done
  printf '\n'
  for arg in "$@"; do
    case $arg in
      *.json) [ -f "$arg" ] && { printf 'FILE\t%s\t' "$arg"; tr -d '\n' <"$arg"; printf '\n'; } ;;
    esac
  done
  case "$1 $2" in "ilm rule") printf 'STDIN\t'; tr -d '\n'; printf '\n' ;; esac
} >>"$log"
case "$1 $2 $3" in
  "admin policy attach")
    if [ -n "${ATTACHED:-}" ]; then
      echo "mc: <ERROR> Unable to make user/group policy association." \
        "The specified policy change is already in effect." >&2
      exit 1
    fi
    if [ -n "${BROKEN:-}" ]; then
      echo "mc: <ERROR> Unable to make user/group policy association. Access Denied." >&2
      exit 1
    fi ;;
esac
exit 0
"""


def run_setup(tmp_path: Path, **env: str) -> tuple[subprocess.CompletedProcess[str], list[dict[str, Any]]]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "mc").write_text(FAKE_MC)
    (bin_dir / "mc").chmod(0o755)
    log = tmp_path / "mc.log"
    log.write_text("")
    work = tmp_path / "tmp"
    work.mkdir(exist_ok=True)
    variables = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "MC_LOG": str(log),
        "TMPDIR": str(work),
        "BUCKET": "photos",
        "ROOT_USER": "imagery",
        "APP_ACCESS_KEY": "imagery-app",
        "APP_SECRET_KEY": "app-secret-123",
        **env,
    }
    done = subprocess.run(  # noqa: S603  # a fixed shell and our own script
        ["/bin/sh", str(SETUP)], env=variables, capture_output=True, text=True, timeout=30, check=False
    )
    calls: list[dict[str, Any]] = []
    for line in log.read_text().splitlines():
        kind, *rest = line.split("\t")
        if kind == "CALL":
            calls.append({"args": rest, "files": {}, "stdin": None})
        elif kind == "FILE":
            calls[-1]["files"][rest[0]] = json.loads(rest[1])
        elif kind == "STDIN":
            calls[-1]["stdin"] = json.loads(rest[0])
    return done, calls


def call(calls: list[dict[str, Any]], *prefix: str) -> dict[str, Any]:
    (found,) = [c for c in calls if c["args"][: len(prefix)] == list(prefix)]
    return found


def only_file(found: dict[str, Any]) -> dict[str, Any]:
    (document,) = found["files"].values()
    return document


def test_anyone_may_get_a_stored_file_and_do_nothing_else(tmp_path: Path) -> None:
    done, calls = run_setup(tmp_path)
    assert done.returncode == 0, done.stderr
    policy = only_file(call(calls, "anonymous", "set-json"))
    assert call(calls, "anonymous", "set-json")["args"][-1] == "s3/photos"
    (statement,) = policy["Statement"]
    # No s3:ListBucket (the listing of every file) and no s3:GetObjectVersion (a deleted file by its version).
    assert statement == {
        "Sid": statement["Sid"],
        "Effect": "Allow",
        "Principal": {"AWS": ["*"]},
        "Action": ["s3:GetObject"],
        # The two prefixes the app serves publicly: stored files, and renditions (which nginx reads for the
        # app's X-Accel-Redirect answers; clients reach them only through the app).
        "Resource": ["arn:aws:s3:::photos/images/*", "arn:aws:s3:::photos/renditions/*"],
    }
    assert not [c for c in calls if c["args"][:2] == ["anonymous", "set"]], (
        "no canned policy (download lists)"
    )


def test_old_versions_expire_a_day_after_they_stop_being_current(tmp_path: Path) -> None:
    done, calls = run_setup(tmp_path)
    assert done.returncode == 0, done.stderr
    assert call(calls, "version", "enable")["args"][-1] == "s3/photos"
    imported = call(calls, "ilm", "rule", "import")
    assert imported["args"][-1] == "s3/photos"
    (rule,) = imported["stdin"]["Rules"]
    assert rule["Status"] == "Enabled" and rule["Filter"] == {"Prefix": ""}
    assert rule["NoncurrentVersionExpiration"] == {"NoncurrentDays": 1}
    assert rule["Expiration"] == {"ExpiredObjectDeleteMarker": True}
    # `rule add` would add one more rule on every `docker compose up`.
    assert not [c for c in calls if c["args"][:3] == ["ilm", "rule", "add"]]


def test_the_app_gets_a_user_of_its_own_limited_to_the_bucket(tmp_path: Path) -> None:
    done, calls = run_setup(tmp_path)
    assert done.returncode == 0, done.stderr
    assert call(calls, "admin", "user", "add")["args"][3:] == ["s3", "imagery-app", "app-secret-123"]
    created = call(calls, "admin", "policy", "create")
    assert created["args"][3:5] == ["s3", "imagery-app"]
    policy = only_file(created)
    granted = {
        (action, resource)
        for statement in policy["Statement"]
        if statement["Effect"] == "Allow"
        for action in statement["Action"]
        for resource in statement["Resource"]
    }
    assert {resource for _, resource in granted} == {
        "arn:aws:s3:::photos",
        "arn:aws:s3:::photos/images/*",
        "arn:aws:s3:::photos/renditions/*",
    }
    assert {action for action, _ in granted} <= {
        "s3:ListBucket",
        "s3:GetBucketLocation",
        "s3:GetObject",
        "s3:PutObject",
        "s3:DeleteObject",
        "s3:AbortMultipartUpload",
        "s3:ListMultipartUploadParts",
    }
    assert ("s3:PutObject", "arn:aws:s3:::photos/images/*") in granted
    assert ("s3:ListBucket", "arn:aws:s3:::photos") in granted  # /readyz's HEAD, reconcile's listing
    attached = call(calls, "admin", "policy", "attach")
    assert attached["args"][3:] == ["s3", "imagery-app", "--user", "imagery-app"]


def test_running_again_is_safe(tmp_path: Path) -> None:
    done, _ = run_setup(tmp_path, ATTACHED="1")
    assert done.returncode == 0, done.stderr


def test_a_real_error_stops_it(tmp_path: Path) -> None:
    done, _ = run_setup(tmp_path, BROKEN="1")
    assert done.returncode != 0
    assert "Access Denied" in done.stderr


@pytest.mark.parametrize("missing", ["BUCKET", "APP_ACCESS_KEY", "APP_SECRET_KEY"])
def test_it_needs_its_settings(tmp_path: Path, missing: str) -> None:
    done, calls = run_setup(tmp_path, **{missing: ""})
    assert done.returncode != 0
    assert calls == []


def test_the_app_never_gets_the_root_user(tmp_path: Path) -> None:
    done, calls = run_setup(tmp_path, APP_ACCESS_KEY="imagery")
    assert done.returncode != 0
    assert "AWS_ACCESS_KEY_ID must differ from MINIO_ROOT_USER" in done.stderr
    assert calls == []
