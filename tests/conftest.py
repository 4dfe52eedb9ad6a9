"""Shared fixtures: every test gets its own media folder and a client that talks HTTP to the app.

Storage: the suite runs on the filesystem, or with IMAGERY_TEST_STORAGE=s3 the tests that use the app
run on S3, against a real S3-compatible HTTP server the suite starts itself (tests/s3.py), in a bucket
emptied before each test. `make test` runs both. After every test that used the app, its rows and its
stored files must match exactly (`api`).
"""

from __future__ import annotations

import functools
import io
import itertools
import os
import re
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from unittest import mock
from urllib.parse import urlsplit

import pytest
import redis
from django.conf import settings as django_settings
from django.core.cache import cache, caches
from django.db import connection
from django.http import HttpResponse
from django.test import Client as DjangoClient
from django.test import override_settings
from django.test.client import MULTIPART_CONTENT
from PIL import Image as PILImage

from api import rate_store
from api.throttling import cache_breaker
from config.caches import default_cache_from_env, redis_from_env
from config.storages import default_storage_from_env
from images import storage
from images.models import Image
from images.reconciliation import reconcile
from tests.images import encode, quadrants
from tests.queue import DATABASE_TASKS
from tests.s3 import ACCESS_KEY, REGION, SECRET_KEY, S3Server

STORAGES = ("filesystem", "s3")
TEST_STORAGE = os.environ.get("IMAGERY_TEST_STORAGE", "filesystem")


def pytest_configure(config: pytest.Config) -> None:
    if TEST_STORAGE not in STORAGES:
        raise pytest.UsageError(f"IMAGERY_TEST_STORAGE must be one of {STORAGES}, not {TEST_STORAGE!r}")
    config.addinivalue_line(
        "markers",
        "filesystem_only: about files the app serves itself (images/files.py); on S3 the bucket serves them",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On S3, run the tests that use the app (the `api` fixture); the others never touch storage."""
    if TEST_STORAGE != "s3":
        return
    kept = [item for item in items if "api" in getattr(item, "fixturenames", ())]
    deselected = [item for item in items if item not in kept]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
    items[:] = kept
    for item in kept:
        if item.get_closest_marker("filesystem_only"):
            item.add_marker(pytest.mark.skip(reason="files are served by the app only from the filesystem"))


@pytest.fixture(autouse=True)
def rate_limiter_trusts_the_cache() -> None:
    """A test that broke the cache must not leave the next one's rate limits open (api/throttling.py)."""
    cache_breaker.reset()


@pytest.fixture(autouse=True)
def storage_guard_closed(settings: Any) -> None:
    """Nor the file store's guard open (images/storage.py): each test starts with the store trusted, and
    a failure of the store does not fail the test's later calls at once, nor does a race a test forces
    (a render held inside the store while a delete runs) meet the caps on calls at once and on callers
    waiting. The time it fails for (STORAGE_RETRY_SECONDS) and the caps (STORAGE_MAX_CONCURRENCY,
    STORAGE_MAX_WAITING) have tests of their own, which set them (tests/test_storage_isolation.py)."""
    settings.STORAGE_RETRY_SECONDS = 0
    settings.STORAGE_MAX_CONCURRENCY = 8
    settings.STORAGE_MAX_WAITING = 8
    storage.guard.reset()


@pytest.fixture(autouse=True)
def media_root(settings: Any, tmp_path: Path) -> Path:
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


# --- Storage -------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """The suite's S3 server, started once, on first use."""
    server = S3Server()
    yield server
    server.stop()


_buckets = itertools.count(1)


def new_bucket(server: S3Server, *, public: bool = True) -> str:
    """A new bucket; `public`: anyone may read its images, as the README tells operators to set it up."""
    bucket = f"imagery-test-{next(_buckets)}"
    server.create_bucket(bucket)
    if public:
        server.allow_public_reads(bucket)
    return bucket


@pytest.fixture(scope="session")
def s3_suite_bucket(s3_server: S3Server) -> Iterator[str]:
    """With IMAGERY_TEST_STORAGE=s3: one bucket and one storage configuration for the whole run."""
    bucket = new_bucket(s3_server)
    with mock.patch.dict(os.environ, s3_server.storage_environment(bucket)):
        storages = {**django_settings.STORAGES, "default": default_storage_from_env()}
    # Configured once, as a server process is; each test starts with the bucket emptied (file_storage).
    with override_settings(STORAGES=storages):
        yield bucket


@pytest.fixture
def s3_bucket(s3_server: S3Server, settings: Any) -> str:
    """For this test, store files in a new, empty bucket on the suite's S3 server."""
    bucket = new_bucket(s3_server)
    use_storage_environment(settings, s3_server.storage_environment(bucket))
    return bucket


def use_storage_environment(settings: Any, environment: dict[str, str]) -> None:
    """Configure the storage from these environment variables, exactly as settings.py does."""
    with mock.patch.dict(os.environ, environment):
        settings.STORAGES = {**settings.STORAGES, "default": default_storage_from_env()}


@pytest.fixture(scope="session", autouse=True)
def suite_storage(request: pytest.FixtureRequest) -> str | None:
    """With IMAGERY_TEST_STORAGE=s3, the suite's bucket; None on the filesystem.

    Session-scoped so it is configured before any test's own settings: an override enabled inside
    another would be undone with it.
    """
    return request.getfixturevalue("s3_suite_bucket") if TEST_STORAGE == "s3" else None


@pytest.fixture(autouse=True)
def file_storage(request: pytest.FixtureRequest, suite_storage: str | None, media_root: Path) -> str:
    """The storage under test: the filesystem (media_root), or with IMAGERY_TEST_STORAGE=s3 a bucket."""
    if suite_storage is not None:
        request.getfixturevalue("s3_server").empty(suite_storage)
    return TEST_STORAGE


def _s3_options() -> dict[str, Any] | None:
    default = django_settings.STORAGES["default"]
    return default.get("OPTIONS") if default["BACKEND"].endswith("S3Storage") else None


@functools.cache
def _s3_client(endpoint: str) -> Any:
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
    )


def stored_names() -> list[str]:
    """Every file in the storage the test uses, listed directly (not through the code under test)."""
    s3 = _s3_options()
    if s3 is not None:
        pages = (
            _s3_client(s3["endpoint_url"]).get_paginator("list_objects_v2").paginate(Bucket=s3["bucket_name"])
        )
        return sorted(entry["Key"] for page in pages for entry in page.get("Contents", ()))
    root = Path(django_settings.MEDIA_ROOT)
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def put_stored_file(name: str, data: bytes) -> None:
    """Place a file in the storage directly, as something other than the app would."""
    s3 = _s3_options()
    if s3 is not None:
        _s3_client(s3["endpoint_url"]).put_object(Bucket=s3["bucket_name"], Key=name, Body=data)
        return
    path = Path(django_settings.MEDIA_ROOT) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def remove_stored_file(name: str) -> None:
    """Remove a file from the storage directly, as a mistaken operator or a failing disk would."""
    s3 = _s3_options()
    if s3 is not None:
        _s3_client(s3["endpoint_url"]).delete_object(Bucket=s3["bucket_name"], Key=name)
        return
    (Path(django_settings.MEDIA_ROOT) / name).unlink()


# A well-formed stored name that no upload makes.
ORPHAN = "images/00/11/" + "0011" * 16 + ".png"


def name_of(body: dict[str, Any]) -> str:
    """The stored name of an image the API answered with (from its `url`, on either backend)."""
    return body["url"][body["url"].index("images/") :]


def assert_nothing_stored() -> None:
    assert Image.objects.count() == 0
    assert stored_names() == []


def files_url() -> str:
    """Where the URLs of stored files start: the app's MEDIA_URL, or the bucket on the S3 server."""
    s3 = _s3_options()
    if s3 is not None:
        return f"{s3['endpoint_url']}/{s3['bucket_name']}/"
    return f"http://testserver{django_settings.MEDIA_URL}"


def assert_rows_match_stored_files(*, orphans_allowed: bool = False) -> None:
    """A row exists exactly when its file does, and `reconcile_storage` agrees.

    `orphans_allowed`: rows were deleted behind the app's back (not through DELETE /images/{id}), so their
    files may remain; still, no row may be without its file.
    """
    referenced = set(Image.objects.values_list("file", flat=True))
    everything = set(stored_names())
    # Renditions (renditions/<sha256 of a stored file>/…, or private/renditions/…) must be of a file some
    # row uses, public with public, private with private.
    renditions = {name for name in everything if name.startswith(("renditions/", "private/renditions/"))}
    stored = everything - renditions
    report = reconcile()
    assert referenced <= stored, ("rows without their file", referenced - stored)
    assert not report.losses, report.losses
    if not orphans_allowed:
        assert stored == referenced, ("files without a row", stored - referenced)
        sources = {
            ("private/" if name.startswith("private/") else "") + name.rsplit("/", 1)[-1].split(".")[0]
            for name in referenced
        }
        orphans = {name for name in renditions if _rendition_source(name) not in sources}
        assert not orphans, ("renditions of no row's file", orphans)
        assert report.clean, (report.orphans, report.rendition_orphans)


def _rendition_source(name: str) -> str:
    """`renditions/<digest>/…` → digest; `private/renditions/<digest>/…` → private/digest."""
    if name.startswith("private/"):
        return "private/" + name.split("/")[2]
    return name.split("/")[1]


# A statement that deletes image rows: the app sends one only for DELETE /images/{id}, which deletes the
# file with the row; some tests send one behind its back.
_ROW_DELETES = re.compile(r'^\s*(DELETE\s+FROM|TRUNCATE)\s+"?images_image"?(\s|$)', re.IGNORECASE)


# --- Redis ---------------------------------------------------------------------------------------

# The Redis that tests of the Redis rate-limit store use; they skip when it does not answer. Other runs may
# share it: each test writes only keys of its own prefix.
TEST_REDIS_URL = os.environ.get("IMAGERY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def use_redis(settings: Any, environment: dict[str, str]) -> None:
    """Count rate limits in Redis (and cache there), as settings.py does when REDIS_URL is set."""
    with mock.patch.dict(os.environ, environment):
        settings.REDIS_URL, settings.REDIS_OPTIONS = redis_from_env()
        settings.CACHES = {"default": default_cache_from_env()}
    settings.RATE_LIMIT_STORE = "redis"
    caches["default"].close()


@pytest.fixture(scope="session")
def redis_url() -> str:
    client = redis.Redis.from_url(TEST_REDIS_URL, socket_connect_timeout=1, socket_timeout=1)
    try:
        client.ping()
    except redis.RedisError as error:
        pytest.skip(f"no Redis answers at {TEST_REDIS_URL} ({error})")
    finally:
        client.close()
    return TEST_REDIS_URL


@pytest.fixture
def redis_prefix(monkeypatch: pytest.MonkeyPatch) -> str:
    """Keys of this test's own in the shared Redis (api.rate_store.REDIS_KEY_PREFIX)."""
    prefix = f"imagery-test:{uuid.uuid4().hex}:"
    monkeypatch.setattr(rate_store, "REDIS_KEY_PREFIX", prefix)
    return prefix


@pytest.fixture
def redis_rate_limits(redis_url: str, redis_prefix: str, settings: Any) -> Iterator[rate_store.Store]:
    """The app counts rate limits in the test Redis, under this test's own keys."""
    use_redis(settings, {"REDIS_URL": redis_url})
    store = rate_store.store()
    yield store
    store.clear()


@pytest.fixture
def database_queue(settings: Any) -> None:
    """Tasks wait in this database (TASK_BACKEND=database) until a worker runs them (tests/queue.py)."""
    settings.TASKS = DATABASE_TASKS
    settings.TASK_BACKEND = "database"


@pytest.fixture(autouse=True)
def open_access(settings: Any, tmp_path: Path) -> None:
    """Tests talk to an open API with fresh rate-limit counters; auth and limits have their own tests."""
    settings.IMAGERY_AUTH = "off"
    settings.RATE_LIMIT_DATABASE = tmp_path / "rate-limits.sqlite3"
    cache.clear()


class Client(DjangoClient):
    """Django's test client; an absolute URL of another host (the S3 server) is fetched over HTTP."""

    # True while the app answers a request: what it deletes, it deletes with its files.
    in_request = False

    def generic(self, method: str, path: Any, *args: Any, headers: Any = None, **kwargs: Any) -> Any:
        parts = urlsplit(str(path))
        if parts.netloc and parts.netloc != "testserver":
            return fetch(method, str(path), headers=headers)
        Client.in_request = True
        try:
            return super().generic(method, path, *args, headers=headers, **kwargs)
        finally:
            Client.in_request = False


def fetch(method: str, url: str, headers: dict[str, str] | None = None) -> HttpResponse:
    """A real HTTP request, answered as an HttpResponse (status, headers, body) like the app's own."""
    request = urllib.request.Request(url, method=method, headers=headers or {})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
            status, answer_headers, body = answer.status, answer.headers, answer.read()
    except urllib.error.HTTPError as error:  # 3xx, 4xx and 5xx
        status, answer_headers, body = error.code, error.headers, error.read()
    response = HttpResponse(body, status=status)
    del response["Content-Type"]
    for key, value in answer_headers.items():
        response[key] = value
    return response


@pytest.fixture
def api(db: None) -> Iterator[Client]:
    """The client; afterwards, the test's rows and stored files must match (see above)."""
    deleted: list[str] = []

    def watch(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        if _ROW_DELETES.match(sql) and not Client.in_request:
            deleted.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(watch):
        yield Client()
    assert_rows_match_stored_files(orphans_allowed=bool(deleted))


@pytest.fixture
def upload(api: Client) -> Callable[..., Any]:
    """POST /images with a file (bytes, or a Pillow image encoded as `fmt`) and form fields."""

    def _upload(
        content: bytes | PILImage.Image | None = None,
        *,
        fmt: str = "PNG",
        filename: str = "picture.png",
        path: str = "/images",
        **fields: Any,
    ) -> Any:
        data = {k: v for k, v in fields.items() if v is not None}
        if content is not None:
            raw = content if isinstance(content, bytes) else encode(content, fmt)
            file = io.BytesIO(raw)
            file.name = filename
            data["image"] = file
        return api.post(path, data, content_type=MULTIPART_CONTENT)

    return _upload


@pytest.fixture
def served(api: Client) -> Callable[[str], PILImage.Image]:
    """Fetch a stored file by the URL the API answered, and open it with Pillow."""

    def _served(url: str) -> PILImage.Image:
        response = api.get(url.removeprefix("http://testserver"))
        assert response.status_code == 200, response
        body = b"".join(response.streaming_content) if response.streaming else response.content
        image = PILImage.open(io.BytesIO(body))
        image.load()
        image.served_bytes = body  # type: ignore[attr-defined]
        image.served_headers = response.headers  # type: ignore[attr-defined]
        return image

    return _served


@pytest.fixture
def posted(upload: Callable[..., Any]) -> Callable[..., dict[str, Any]]:
    """Upload `content` (bytes, or a Pillow image) with form fields; the object it answered (201 or fail)."""

    def _posted(content: bytes | PILImage.Image, **fields: Any) -> dict[str, Any]:
        response = upload(content, **fields)
        assert response.status_code == 201, response.content
        return response.json()

    return _posted


@pytest.fixture
def create(upload: Callable[..., Any]) -> Callable[..., dict[str, Any]]:
    """Upload a tiny image through the API and return the object it answered."""

    def _create(title: str = "picture", **fields: Any) -> dict[str, Any]:
        response = upload(quadrants((8, 4)), title=title, **fields)
        assert response.status_code == 201, response.content
        return response.json()

    return _create


@pytest.fixture
def many(create: Callable[..., dict[str, Any]]) -> Callable[[int], list[int]]:
    """`n` images: one uploaded, the rest cloned as rows (cheap); returns every id."""

    def _many(n: int) -> list[int]:
        first = Image.objects.get(pk=create(title="image 0")["id"])
        Image.objects.bulk_create(
            Image(
                title=f"image {i}",
                title_folded=f"image {i}",
                file=first.file.name,
                width=first.width,
                height=first.height,
                format=first.format,
                size=first.size,
            )
            for i in range(1, n)
        )
        return list(Image.objects.values_list("id", flat=True))

    return _many
