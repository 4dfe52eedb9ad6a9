"""Resumable uploads (tus 1.0) on an upload URL, request by request: every status the protocol names, what
is stored when, and the image the last chunk makes. (A real client against a live server, and another
process, in tests/test_tus_client.py.) On the filesystem, and on S3 with IMAGERY_TEST_STORAGE=s3.
"""

from __future__ import annotations

import base64
import hashlib
import io
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.core.management import call_command
from django.utils import timezone
from PIL import Image as PILImage

from tests.conftest import put_stored_file, stored_names
from tests.images import encode, quadrants
from uploads import partials
from uploads.models import DirectUpload
from uploads.resumable import UNRECORDED_CHUNK_AGE, tus_partials_sweep

OFFSET_STREAM = "application/offset+octet-stream"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def partial_names() -> list[str]:
    return [name for name in stored_names() if name.startswith(partials.PREFIX)]


@pytest.fixture
def png() -> bytes:
    # Large enough for several chunks: noise does not compress.
    image = quadrants((96, 64))
    noise = PILImage.effect_noise((96, 64), 64).convert("RGB")
    image.paste(noise.crop((0, 0, 48, 32)), (0, 0))
    return encode(image, "PNG")


@pytest.fixture
def mint(api: Any) -> Any:
    """POST /uploads: a new upload URL's path (the secret in it), with what the request fixes."""

    def _mint(**fixed: Any) -> str:
        response = api.post("/uploads", fixed, content_type="application/json")
        assert response.status_code == 201, response.content
        return urlsplit(response.json()["upload_url"]).path

    return _mint


@pytest.fixture
def tus(api: Any) -> Any:
    """One tus request: `Tus-Resumable: 1.0.0` unless told otherwise, headers as keyword arguments."""

    def _tus(
        method: str, path: str, body: bytes = b"", *, content_type: str = OFFSET_STREAM, **headers: str
    ) -> Any:
        headers = {
            "Tus-Resumable": "1.0.0",
            **{key.replace("_", "-"): value for key, value in headers.items()},
        }
        headers = {key: value for key, value in headers.items() if value is not None}
        # Django's client sets no Content-Type for an empty body; a tus client's PATCH always has one.
        extra = {"CONTENT_TYPE": content_type} if body or method == "PATCH" else {}
        return api.generic(method, path, body, content_type=content_type, headers=headers, **extra)

    return _tus


def create(tus: Any, path: str, length: int, **headers: str) -> Any:
    response = tus("POST", path, Upload_Length=str(length), **headers)
    assert response.status_code == 201, response.content
    return response


def patch(tus: Any, path: str, offset: int, chunk: bytes, **headers: str) -> Any:
    return tus("PATCH", path, chunk, Upload_Offset=str(offset), **headers)


def send_all(tus: Any, path: str, data: bytes, size: int) -> Any:
    """PATCH `data` in chunks of `size`; the last answer."""
    response = None
    for start in range(0, len(data), size):
        response = patch(tus, path, start, data[start : start + size])
        assert response.status_code == 204, response.content
        assert response["Upload-Offset"] == str(min(start + size, len(data)))
    return response


def test_discovery(tus, mint):
    path = mint(max_bytes=123456)
    response = tus("OPTIONS", path, Tus_Resumable=None)
    assert response.status_code == 204
    assert response["Tus-Resumable"] == "1.0.0"
    assert response["Tus-Version"] == "1.0.0"
    assert response["Tus-Max-Size"] == "123456"
    assert {"creation", "creation-with-upload", "expiration", "termination", "checksum"} <= set(
        response["Tus-Extension"].split(",")
    )
    assert response["Tus-Checksum-Algorithm"] == "sha1,sha256"


def test_chunks_make_the_image_and_the_url_says_completed(api, tus, mint, png, served):
    path = mint(width=48)
    created = create(
        tus, path, len(png), Upload_Metadata=f"filename {b64('sunset.png')},title {b64('Sunset')}"
    )
    assert urlsplit(created["Location"]).path == path
    assert created["Upload-Expires"].endswith(" GMT")

    size = len(png) // 3 + 1
    for start in range(0, len(png) - size, size):
        assert patch(tus, path, start, png[start : start + size]).status_code == 204
        head = tus("HEAD", path)
        assert head.status_code == 200
        assert head["Upload-Offset"] == str(start + size)
        assert head["Upload-Length"] == str(len(png))
        assert "no-store" in head["Cache-Control"]
        assert partial_names(), "the chunks so far are in the store"
    last = (len(png) - 1) // size * size
    done = patch(tus, path, last, png[last:])
    assert done.status_code == 204, done.content
    assert done["Upload-Offset"] == str(len(png))
    image_path = done["Imagery-Image"]

    image = api.get(image_path).json()
    assert image["title"] == "Sunset"
    assert (image["width"], image["height"]) == (48, 32)
    assert served(image["url"]).getpixel((40, 2))[:3] == quadrants((96, 64)).getpixel((80, 4))[:3]
    assert partial_names() == []

    upload_id = path.split("/")[2]
    state = api.get(f"/uploads/{upload_id}").json()
    assert state["state"] == "completed"
    assert state["image"]["id"] == image["id"]
    # Used: a second creation is refused like a second upload; HEAD still tells the client where it is.
    assert tus("POST", path, Upload_Length="10").status_code == 409
    head = tus("HEAD", path)
    assert head["Upload-Offset"] == str(len(png))
    assert head["Imagery-Image"] == image_path


def test_creation_with_upload_in_one_request(api, tus, mint, png):
    path = mint()
    response = tus("POST", path, png, Upload_Length=str(len(png)))
    assert response.status_code == 201, response.content
    assert response["Upload-Offset"] == str(len(png))
    assert api.get(response["Imagery-Image"]).status_code == 200


def test_creation_with_part_of_the_file_then_the_rest(api, tus, mint, png):
    path = mint()
    response = tus("POST", path, png[:100], Upload_Length=str(len(png)))
    assert response.status_code == 201
    assert response["Upload-Offset"] == "100"
    assert patch(tus, path, 100, png[100:])["Imagery-Image"].startswith("/images/")


def test_a_wrong_offset_is_a_409_and_changes_nothing(tus, mint, png):
    path = mint()
    create(tus, path, len(png))
    assert patch(tus, path, 0, png[:50]).status_code == 204
    for offset in (0, 49, 51, len(png)):
        response = patch(tus, path, offset, png[offset : offset + 10])
        assert response.status_code == 409, offset
        assert response["Tus-Resumable"] == "1.0.0"
        assert response.json()["code"] == "offset_conflict"
    assert tus("HEAD", path)["Upload-Offset"] == "50"
    assert len(partial_names()) == 1
    tus("DELETE", path)


def test_a_chunk_must_be_an_offset_stream(tus, mint, png):
    path = mint()
    create(tus, path, len(png))
    response = tus("PATCH", path, png[:10], content_type="application/octet-stream", Upload_Offset="0")
    assert response.status_code == 415
    assert tus("HEAD", path)["Upload-Offset"] == "0"
    tus("DELETE", path)


@pytest.mark.parametrize("version", [None, "0.2.2", "2.0.0"])
def test_another_tus_version_is_a_412_naming_ours(tus, mint, png, version):
    path = mint()
    response = tus("POST", path, Tus_Resumable=version, Upload_Length=str(len(png)))
    assert response.status_code == 412
    assert response["Tus-Version"] == "1.0.0"
    assert response["Tus-Resumable"] == "1.0.0"
    assert DirectUpload.objects.get().tus_created_at is None


def test_a_checksum_mismatch_is_a_460_and_keeps_nothing(tus, mint, png):
    path = mint()
    create(tus, path, len(png))
    chunk = png[:64]
    wrong = base64.b64encode(hashlib.sha1(chunk + b"x").digest()).decode()  # noqa: S324 - tus's checksum
    response = patch(tus, path, 0, chunk, Upload_Checksum=f"sha1 {wrong}")
    assert response.status_code == 460
    assert response.json()["code"] == "checksum_mismatch"
    assert tus("HEAD", path)["Upload-Offset"] == "0"
    assert partial_names() == []

    right = base64.b64encode(hashlib.sha256(chunk).digest()).decode()
    assert patch(tus, path, 0, chunk, Upload_Checksum=f"sha256 {right}").status_code == 204
    md5 = base64.b64encode(hashlib.md5(chunk).digest()).decode()  # noqa: S324 - an algorithm we refuse
    assert patch(tus, path, 64, png[64:80], Upload_Checksum=f"md5 {md5}").status_code == 400
    tus("DELETE", path)


def test_an_upload_length_over_the_urls_limit_is_a_413(tus, mint):
    path = mint(max_bytes=1000)
    response = tus("POST", path, Upload_Length="1001")
    assert response.status_code == 413
    assert DirectUpload.objects.get().tus_created_at is None
    create(tus, path, 1000)
    tus("DELETE", path)


def test_a_chunk_past_the_length_is_refused_before_it_is_read(tus, mint, png):
    path = mint()
    create(tus, path, 100)
    assert patch(tus, path, 0, png[:101]).status_code == 413
    assert tus("HEAD", path)["Upload-Offset"] == "0"
    assert partial_names() == []
    tus("DELETE", path)


@pytest.mark.parametrize(
    "header",
    [
        {"Upload_Length": "²"},
        {"Upload_Length": "-1"},
        {"Upload_Length": "10", "Upload_Defer_Length": "1"},
        {},
        {"Upload_Length": "10", "Upload_Metadata": f"filename {b64('a')},filename {b64('b')}"},
        {"Upload_Length": "10", "Upload_Metadata": "filename ***"},
        {"Upload_Length": "10", "Upload_Metadata": f"width {b64('0')}"},
        {"Upload_Length": "10", "Upload_Metadata": f"fit {b64('sideways')}"},
        # NUL in a value no field reads: kept in the row's JSON, which PostgreSQL refused with a 500.
        {"Upload_Length": "10", "Upload_Metadata": "relativePath " + base64.b64encode(b"a\x00b").decode()},
    ],
)
def test_malformed_creations_are_a_400(tus, mint, header):
    path = mint()
    response = tus("POST", path, **header)
    assert response.status_code == 400, response.content
    assert response["Content-Type"] == "application/problem+json"
    assert DirectUpload.objects.get().tus_created_at is None


def test_metadata_may_not_change_what_the_url_fixed(tus, mint):
    path = mint(title="Fixed")
    response = tus("POST", path, Upload_Length="10", Upload_Metadata=f"title {b64('Mine')}")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "title"


def test_termination_removes_the_data_and_frees_the_url(api, tus, mint, png):
    path = mint()
    create(tus, path, len(png))
    patch(tus, path, 0, png[:200])
    assert partial_names()
    response = tus("DELETE", path)
    assert response.status_code == 204
    assert response["Tus-Resumable"] == "1.0.0"
    assert partial_names() == []
    assert tus("HEAD", path).status_code == 404
    assert patch(tus, path, 200, png[200:]).status_code == 404
    # The URL takes a new upload until it expires.
    create(tus, path, len(png))
    assert patch(tus, path, 0, png)["Imagery-Image"]


def test_a_second_creation_while_one_is_under_way_is_a_409(tus, mint, png):
    path = mint()
    create(tus, path, len(png))
    assert tus("POST", path, Upload_Length=str(len(png))).status_code == 409
    tus("DELETE", path)


def test_a_bad_image_at_the_end_is_answered_as_post_images_and_the_url_stays_usable(
    api, tus, mint, png, upload
):
    path = mint()
    junk = b"not an image at all, " * 20
    create(tus, path, len(junk))
    patch(tus, path, 0, junk[:100])
    refused = patch(tus, path, 100, junk[100:])
    direct = upload(junk)
    assert refused.status_code == direct.status_code
    assert refused.status_code in (400, 415)
    assert refused.json()["code"] == direct.json()["code"]
    assert partial_names() == []
    assert DirectUpload.objects.get().state == "pending"
    # Another file on the same URL.
    create(tus, path, len(png))
    assert patch(tus, path, 0, png).status_code == 204


def test_deferred_length_is_declared_by_a_later_patch(api, tus, mint, png):
    path = mint()
    response = tus("POST", path, Upload_Defer_Length="1")
    assert response.status_code == 201
    assert tus("HEAD", path)["Upload-Defer-Length"] == "1"
    assert patch(tus, path, 0, png[:100]).status_code == 204
    done = patch(tus, path, 100, png[100:], Upload_Length=str(len(png)))
    assert done.status_code == 204
    assert done["Imagery-Image"]


def test_an_expired_url_is_a_410_and_the_sweep_removes_its_data(tus, mint, png):
    path = mint()
    create(tus, path, len(png))
    patch(tus, path, 0, png[:100])
    DirectUpload.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert patch(tus, path, 100, png[100:]).status_code == 410
    assert tus("HEAD", path).status_code == 410
    assert tus("POST", path, Upload_Length="10").status_code == 410
    assert partial_names()
    call_command("expire_uploads", stdout=io.StringIO())
    assert partial_names() == []
    # Swept: the URL is gone.
    assert tus("HEAD", path).status_code == 404


def test_reconcile_storage_fix_removes_chunks_nobody_will_read(tus, mint, png):
    path = mint()
    create(tus, path, len(png))
    patch(tus, path, 0, png[:100])
    upload = DirectUpload.objects.get()
    # A chunk a killed PATCH stored but never recorded; and one of an upload that is gone.
    stray = partials.chunk_name(upload.pk, 100)
    put_stored_file(stray, b"x" * 10)
    orphan = partials.chunk_name("00000000-0000-0000-0000-000000000000", 0)
    put_stored_file(orphan, b"y" * 10)
    later = timezone.now() + UNRECORDED_CHUNK_AGE + timedelta(seconds=5)
    assert tus_partials_sweep(now=later, fix=False) == 2
    out = io.StringIO()
    call_command("reconcile_storage", "--fix", stdout=out)
    assert "partial upload chunks" in out.getvalue()
    # The recorded chunk stays (the upload goes on); the unrecorded one too, until it is old.
    assert partial_names() == sorted([*upload.tus_chunks, stray])
    assert tus_partials_sweep(now=later) == 1
    assert partial_names() == DirectUpload.objects.get().tus_chunks
    assert patch(tus, path, 100, png[100:]).status_code == 204


def test_a_resumable_upload_counts_once_as_an_upload_and_its_chunks_as_chunks(api, settings, tus, mint, png):
    settings.THROTTLE_UPLOADS_PER_ADDRESS = "2/hour"  # the URL's minting and the tus creation
    path = mint()
    create(tus, path, len(png))
    assert send_all(tus, path, png, len(png) // 5 + 1)["Imagery-Image"]
    assert api.post("/uploads", {}, content_type="application/json").status_code == 429


def test_chunks_have_a_limit_of_their_own(settings, tus, mint, png):
    settings.THROTTLE_UPLOAD_CHUNKS_PER_ADDRESS = "2/hour"
    path = mint()
    create(tus, path, len(png))
    assert patch(tus, path, 0, png[:10]).status_code == 204
    assert patch(tus, path, 10, png[10:20]).status_code == 204
    refused = patch(tus, path, 20, png[20:30])
    assert refused.status_code == 429
    assert refused["Tus-Resumable"] == "1.0.0"
    assert tus("HEAD", path)["Upload-Offset"] == "20"
    settings.THROTTLE_UPLOAD_CHUNKS_PER_ADDRESS = ""
    assert tus("DELETE", path).status_code == 204


def test_a_browser_on_an_allowed_origin_may_speak_tus(api, settings, tus, mint, png):
    origin = "https://app.example.com"
    settings.CORS_ALLOWED_ORIGINS = [origin]
    path = mint()
    preflight = api.options(
        path,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "PATCH",
            "Access-Control-Request-Headers": "tus-resumable,upload-offset,upload-checksum,content-type",
        },
    )
    assert preflight.status_code == 200
    assert preflight["Access-Control-Allow-Origin"] == origin
    allowed = {name.strip() for name in preflight["Access-Control-Allow-Headers"].split(",")}
    assert {
        "tus-resumable",
        "upload-offset",
        "upload-checksum",
        "upload-length",
        "upload-metadata",
    } <= allowed
    assert {"PATCH", "HEAD", "DELETE"} <= set(preflight["Access-Control-Allow-Methods"].split(", "))

    created = tus("POST", path, Upload_Length=str(len(png)), Origin=origin)
    exposed = {name.strip().lower() for name in created["Access-Control-Expose-Headers"].split(",")}
    assert {"location", "upload-offset", "upload-expires", "tus-resumable", "imagery-image"} <= exposed
    done = patch(tus, path, 0, png, Origin=origin)
    assert done["Access-Control-Allow-Origin"] == origin
    assert done["Imagery-Image"]


def test_a_failure_of_ours_at_the_end_takes_the_last_chunk_back_for_a_retry(api, tus, mint, png, monkeypatch):
    from images.exceptions import StorageUnavailable
    from uploads import resumable

    path = mint()
    create(tus, path, len(png))
    assert patch(tus, path, 0, png[:100]).status_code == 204

    def store_down(**kwargs: Any) -> None:
        raise StorageUnavailable("The file store is unavailable; nothing was saved.")

    with monkeypatch.context() as patched:
        patched.setattr(resumable, "direct_upload_complete", store_down)
        failed = patch(tus, path, 100, png[100:])
    assert failed.status_code == 503
    assert failed["Tus-Resumable"] == "1.0.0"
    # As if the last PATCH had not come: the client retries it as it is.
    assert tus("HEAD", path)["Upload-Offset"] == "100"
    assert len(partial_names()) == 1
    retried = patch(tus, path, 100, png[100:])
    assert retried.status_code == 204
    assert api.get(retried["Imagery-Image"]).status_code == 200


def test_a_chunk_that_is_not_there_is_no_failure_of_the_store(api, settings):
    # The sweep asks when a chunk was written and finds it gone (removed meanwhile): an answer of the store,
    # which must not open the store's guard (every upload of the process would then fail for a while).
    from images import storage

    settings.STORAGE_RETRY_SECONDS = 600
    missing = partials.chunk_name("00000000-0000-0000-0000-000000000000", 0) + ".gone"
    assert partials.modified(missing) is None
    assert not storage.guard.is_open()
    with pytest.raises(partials.PartialStoreUnavailable), partials.assembled([missing]):
        pass
    assert not storage.guard.is_open()
