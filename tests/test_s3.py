"""S3 storage against a real S3-compatible server (moto's, over HTTP): configuration from the environment,
public cacheable objects, and what users see when the server hangs or is gone.

These run in both passes of `make test`; the rest of the suite runs on S3 too with IMAGERY_TEST_STORAGE=s3.
"""

from __future__ import annotations

import io
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.test import Client
from PIL import Image as PILImage

from config.env import BASE_DIR
from config.storages import CACHE_FOREVER, default_storage_from_env
from images import storage
from images.models import Image
from tests.conftest import (
    ORPHAN,
    assert_rows_match_stored_files,
    fetch,
    name_of,
    new_bucket,
    stored_names,
    use_storage_environment,
)
from tests.images import encode, quadrants
from tests.s3 import S3Server, free_port

# Fail fast in the tests that stop the server: one attempt, one second.
IMPATIENT = {"AWS_S3_CONNECT_TIMEOUT": "1", "AWS_S3_READ_TIMEOUT": "1", "AWS_S3_MAX_ATTEMPTS": "1"}


# --- Configuration ------------------------------------------------------------------------------


def storage_config(**environ: str) -> dict[str, Any]:
    with mock.patch.dict(os.environ, environ, clear=True):
        return default_storage_from_env()


def test_filesystem_is_the_default_storage() -> None:
    assert storage_config() == {"BACKEND": "images.storage.AtomicFileSystemStorage"}


def test_s3_settings_come_from_the_environment_with_safe_defaults() -> None:
    config = storage_config(STORAGE_BACKEND="s3", AWS_STORAGE_BUCKET_NAME="pictures")
    assert config["BACKEND"] == "storages.backends.s3.S3Storage"
    options = config["OPTIONS"]
    assert options["bucket_name"] == "pictures"
    assert options["file_overwrite"] is False
    assert options["querystring_auth"] is False
    assert options["object_parameters"] == {"CacheControl": "public, max-age=31536000, immutable"}
    assert options["max_memory_size"] == 10 * 1024 * 1024
    assert options["endpoint_url"] is None and options["custom_domain"] is None
    assert options["access_key"] is None  # boto3's own chain: instance role, ~/.aws, AWS_* variables


def test_s3_settings_use_django_storages_names() -> None:
    options = storage_config(
        STORAGE_BACKEND="s3",
        AWS_STORAGE_BUCKET_NAME="pictures",
        AWS_S3_ENDPOINT_URL="http://minio:9000",
        AWS_S3_REGION_NAME="eu-central-1",
        AWS_ACCESS_KEY_ID="key",
        AWS_SECRET_ACCESS_KEY="secret",
        AWS_S3_CUSTOM_DOMAIN="cdn.example.com",
        AWS_QUERYSTRING_AUTH="true",
        AWS_QUERYSTRING_EXPIRE="600",
        AWS_S3_MAX_MEMORY_SIZE="1048576",
        AWS_S3_ADDRESSING_STYLE="path",
    )["OPTIONS"]
    assert (options["endpoint_url"], options["region_name"]) == ("http://minio:9000", "eu-central-1")
    assert (options["access_key"], options["secret_key"]) == ("key", "secret")
    assert options["custom_domain"] == "cdn.example.com"
    assert (options["querystring_auth"], options["querystring_expire"]) == (True, 600)
    assert options["max_memory_size"] == 1048576
    assert options["client_config"].s3 == {"addressing_style": "path"}


def test_s3_empty_variables_count_as_unset() -> None:
    options = storage_config(
        STORAGE_BACKEND="s3",
        AWS_STORAGE_BUCKET_NAME="pictures",
        AWS_S3_ENDPOINT_URL="",
        AWS_S3_CUSTOM_DOMAIN="",
    )["OPTIONS"]
    assert options["endpoint_url"] is None and options["custom_domain"] is None


@pytest.mark.parametrize(
    "environ", [{"STORAGE_BACKEND": "s3"}, {"STORAGE_BACKEND": "ftp"}], ids=["no bucket", "unknown backend"]
)
def test_storage_misconfiguration_stops_the_start(environ: dict[str, str]) -> None:
    with pytest.raises(ImproperlyConfigured):
        storage_config(**environ)


# --- Objects --------------------------------------------------------------------------------------


def test_s3_url_is_public_cacheable_and_serves_the_image(
    s3_server: S3Server, s3_bucket: str, upload: Callable[..., Any]
) -> None:
    body = upload(quadrants((400, 200)), width=100).json()
    assert body["url"] == f"{s3_server.endpoint}/{s3_bucket}/{name_of(body)}"
    assert "?" not in body["url"]  # no signature: the same URL every time, cacheable anywhere
    # GET without credentials, as a browser or a CDN would.
    response = fetch("GET", body["url"])
    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"
    assert response["Cache-Control"] == CACHE_FOREVER
    assert int(response["Content-Length"]) == body["size"] == len(response.content)
    assert PILImage.open(io.BytesIO(response.content)).size == (100, 50)


@pytest.mark.parametrize("method", ["GET", "HEAD", "POST"])
def test_on_s3_the_apps_file_route_answers_404(s3_bucket: str, api: Client, create: Any, method: str) -> None:
    # The files are the bucket's to serve: the app's own /media/ knows none of them, whatever the method.
    response = api.generic(method, f"/media/{name_of(create())}")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/problem+json"


@pytest.mark.parametrize(
    ("fmt", "media_type"),
    [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("GIF", "image/gif"), ("WEBP", "image/webp")],
)
def test_s3_objects_carry_the_content_type_of_their_format(
    s3_server: S3Server, s3_bucket: str, upload: Callable[..., Any], fmt: str, media_type: str
) -> None:
    body = upload(quadrants((40, 20)), fmt=fmt, filename=f"x.{fmt.lower()}").json()
    head = s3_server.head(s3_bucket, name_of(body))
    assert (head["ContentType"], head["CacheControl"]) == (media_type, CACHE_FOREVER)


def test_s3_never_writes_over_an_existing_whole_object(
    s3_server: S3Server, s3_bucket: str, upload: Callable[..., Any]
) -> None:
    raw = encode(quadrants(), "PNG")
    first = upload(raw, title="first").json()
    name = name_of(first)
    already_there = b"the bytes already there".ljust(first["size"], b".")  # whole: the size of its row
    s3_server.put(s3_bucket, name, already_there)
    second = upload(raw, title="second").json()
    assert name_of(second) == name
    assert fetch("GET", second["url"]).content == already_there
    assert stored_names() == [name]


def test_s3_large_upload_is_stored_in_parts_with_its_headers(
    s3_server: S3Server, s3_bucket: str, upload: Callable[..., Any]
) -> None:
    # Over boto3's 8 MiB threshold, the object is sent as a multipart upload, streamed from the bytes.
    noise = PILImage.frombytes("RGB", (1800, 1700), os.urandom(1800 * 1700 * 3))
    body = upload(noise).json()
    assert body["size"] > 8 * 1024 * 1024
    head = s3_server.head(s3_bucket, name_of(body))
    assert head["ContentLength"] == body["size"]
    assert (head["ContentType"], head["CacheControl"]) == ("image/png", CACHE_FOREVER)
    assert "-" in head["ETag"]  # a multipart object's ETag counts its parts


def test_s3_custom_domain_gives_cdn_urls(
    s3_server: S3Server, s3_bucket: str, settings: Any, upload: Callable[..., Any]
) -> None:
    environ = s3_server.storage_environment(s3_bucket, AWS_S3_CUSTOM_DOMAIN="cdn.example.com")
    use_storage_environment(settings, environ)
    body = upload(quadrants()).json()
    assert body["url"] == f"https://cdn.example.com/{name_of(body)}"


def test_s3_signed_urls_work_for_a_private_bucket(
    s3_server: S3Server, settings: Any, upload: Callable[..., Any]
) -> None:
    bucket = new_bucket(s3_server, public=False)
    use_storage_environment(settings, s3_server.storage_environment(bucket, AWS_QUERYSTRING_AUTH="true"))
    url = upload(quadrants()).json()["url"]
    assert "X-Amz-Signature=" in url  # SigV4
    assert fetch("GET", url).status_code == 200
    assert fetch("GET", url.split("?")[0]).status_code == 403


# --- Readiness ------------------------------------------------------------------------------------


def test_readyz_is_ok_on_s3(s3_bucket: str, api: Any) -> None:
    response = api.get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"]["storage"] == "ok"


# A plain client: these storages cannot be listed after the test (the `api` fixture checks that).


def test_readyz_is_503_when_the_bucket_does_not_exist(s3_server: S3Server, settings: Any, db: None) -> None:
    use_storage_environment(settings, s3_server.storage_environment("no-such-bucket"))
    response = Client().get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"] == {"database": "ok", "storage": "unavailable"}


def test_readyz_is_503_when_nothing_answers_at_the_endpoint(
    s3_server: S3Server, settings: Any, db: None
) -> None:
    environ = s3_server.storage_environment("any", AWS_S3_ENDPOINT_URL=f"http://127.0.0.1:{free_port()}")
    use_storage_environment(settings, environ)
    assert Client().get("/readyz").status_code == 503


# --- The server stops -----------------------------------------------------------------------------


def test_s3_server_stopped_uploads_get_503_fast_and_nothing_is_saved(
    s3_server: S3Server, s3_bucket: str, settings: Any, upload: Callable[..., Any], api: Any
) -> None:
    use_storage_environment(settings, s3_server.storage_environment(s3_bucket, **IMPATIENT))
    before = upload(quadrants((40, 20)), title="before").json()

    with s3_server.paused():  # the process is stopped: connections hang, nothing answers
        started = time.monotonic()
        response = upload(quadrants((20, 40)), title="during")
        assert time.monotonic() - started < 5
        assert response.status_code == 503
        assert response["Content-Type"] == "application/problem+json"
        assert response.json()["code"] == "storage_unavailable"
        assert int(response["Retry-After"]) > 0
        started = time.monotonic()
        ready = api.get("/readyz")
        assert ready.status_code == 503
        assert time.monotonic() - started < storage.PROBE_TIMEOUT_SECONDS + 2
        assert api.get("/images").json()["count"] == 1  # reads of the database go on

    assert list(Image.objects.values_list("title", flat=True)) == ["before"]
    assert stored_names() == [name_of(before)]
    after = upload(quadrants((20, 40)), title="after")
    assert after.status_code == 201
    assert api.get("/readyz").status_code == 200
    assert_rows_match_stored_files()


def test_s3_server_stopped_between_the_file_and_the_row_leaves_no_row(
    s3_server: S3Server,
    s3_bucket: str,
    settings: Any,
    upload: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The file is stored, then the server stops before the row is saved: 503, no row. The cleanup cannot
    # reach the server either, so the file may stay as an orphan (a crash here would leave the same), which
    # reconcile_storage reports and --fix removes. Never a row without its file.
    use_storage_environment(settings, s3_server.storage_environment(s3_bucket, **IMPATIENT))
    real_store = storage.store_as
    stored: list[str] = []

    def store_then_stop(name: str, data: bytes, *, media_type: str) -> bool:
        created = real_store(name, data, media_type=media_type)
        stored.append(name)
        s3_server.pause()  # the server stops right after the file was stored
        return created

    with monkeypatch.context() as patch:
        patch.setattr(storage, "store_as", store_then_stop)
        try:
            response = upload(quadrants())
        finally:
            s3_server.resume()
    assert response.status_code == 503
    assert response.json()["code"] == "storage_unavailable"
    assert Image.objects.count() == 0
    # At most an orphan, whenever the resumed server answers the cleanup's delete it may have queued.
    assert stored_names() in ([], stored)

    call_command("reconcile_storage", "--fix", stdout=io.StringIO(), stderr=io.StringIO())
    assert stored_names() == []
    assert_rows_match_stored_files()


# --- The operator's tool, as an operator runs it ----------------------------------------------------


def test_reconcile_storage_runs_on_s3_configured_from_the_environment(
    s3_server: S3Server, tmp_path: Path
) -> None:
    bucket = new_bucket(s3_server)
    database = tmp_path / "db.sqlite3"
    environ = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "IMAGERY_TEST", "DATABASE_URL"))},
        **s3_server.storage_environment(bucket),
        "DATABASE_URL": f"sqlite:///{database}",
        "DATA_DIR": str(tmp_path),
        "SECRET_KEY": "reconcile-storage-test",  # what production asks for; nothing here signs anything
    }

    def manage(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(  # noqa: S603
            [sys.executable, "manage.py", *args],
            cwd=BASE_DIR,
            env=environ,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    assert manage("migrate", "--noinput").returncode == 0
    s3_server.put(bucket, ORPHAN, b"left by a crash")
    lost = "images/22/33/" + "2233" * 16 + ".png"
    with sqlite3.connect(database) as db:
        db.execute(
            "INSERT INTO images_image (title, title_folded, file, width, height, format, size, created_at)"
            " VALUES ('gone', 'gone', ?, 1, 1, 'png', 1, '2026-01-01 00:00:00')",
            [lost],
        )

    found = manage("reconcile_storage")
    assert found.returncode == 1, found.stderr  # a loss
    assert f"orphan {ORPHAN} (no row points at it)" in found.stdout
    assert f"LOST {lost} (rows 1)" in found.stdout
    assert "stored files: 1, done." in found.stderr  # plain progress lines: no terminal here
    assert s3_server.names(bucket) == [ORPHAN]

    fixed = manage("reconcile_storage", "--fix")
    assert fixed.returncode == 1  # the loss stays: --fix removes orphans only
    assert f"removed orphan {ORPHAN}" in fixed.stdout
    assert s3_server.names(bucket) == []


# --- Deleting many files ------------------------------------------------------------------------


def s3_requests() -> dict[str, int]:
    """The requests the storage's own S3 client sends from now on, counted by operation name."""
    from django.core.files.storage import storages

    counts: dict[str, int] = {}

    def count(model: Any, **kwargs: Any) -> None:
        counts[model.name] = counts.get(model.name, 0) + 1

    # The client is this test's storage's own (s3_bucket): the counter goes with it.
    storages["default"].connection.meta.client.meta.events.register("before-call.s3", count)
    return counts


def test_delete_prefix_on_s3_sends_one_request_per_batch_of_keys(
    s3_server: S3Server, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert storage.S3_DELETE_BATCH == 1000  # S3's own maximum per DeleteObjects
    monkeypatch.setattr(storage, "S3_DELETE_BATCH", 10)  # 25 keys then take 3 requests
    prefix = "renditions/" + "ab" * 32 + "/"
    for i in range(25):
        s3_server.put(s3_bucket, f"{prefix}w{i}.0123456789.webp", b"a rendition")
    other = "renditions/" + "cd" * 32 + "/w320.0123456789.webp"
    s3_server.put(s3_bucket, other, b"another file's rendition")
    requests = s3_requests()

    assert storage.delete_prefix(prefix) is True
    assert requests == {"ListObjectsV2": 1, "DeleteObjects": 3}  # not 25 DeleteObject
    assert s3_server.names(s3_bucket) == [other]


def test_delete_prefix_on_s3_reports_keys_the_store_refused(
    s3_server: S3Server, s3_bucket: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from django.core.files.storage import storages

    prefix = "renditions/" + "ab" * 32 + "/"
    for i in range(3):
        s3_server.put(s3_bucket, f"{prefix}w{i}.0123456789.webp", b"a rendition")
    client = storages["default"].connection.meta.client
    real = client.delete_objects

    def refuse_one(**kwargs: Any) -> dict[str, Any]:
        kept, *rest = kwargs["Delete"]["Objects"]
        answer = real(**{**kwargs, "Delete": {**kwargs["Delete"], "Objects": rest}})
        return {**answer, "Errors": [{"Key": kept["Key"], "Code": "AccessDenied", "Message": "no"}]}

    monkeypatch.setattr(client, "delete_objects", refuse_one)
    assert storage.delete_prefix(prefix) is False
    assert s3_server.names(s3_bucket) == [f"{prefix}w0.0123456789.webp"]
    assert f"deleting {prefix}w0.0123456789.webp failed (AccessDenied)" in caplog.text


def test_s3_calls_where_a_user_waits_are_bounded_by_default() -> None:
    # A hung store costs a request about read timeout x attempts: 2 s x 2 (10 s x 3 held threads 30 s).
    config = storage_config(STORAGE_BACKEND="s3", AWS_STORAGE_BUCKET_NAME="pictures")["OPTIONS"][
        "client_config"
    ]
    assert (config.connect_timeout, config.read_timeout) == (2.0, 2.0)
    assert config.retries == {"mode": "standard", "total_max_attempts": 2}
