"""The README's flow through a client generated from the schema, as a user of the API would integrate it.

Run by `.ci/client-check` (make client-check) with `.venv-client`'s Python, which has
openapi-python-client and the generated client's dependencies and nothing of the app:

    client_flow.py SCHEMA OUT_DIR BASE_URL

It generates the client from SCHEMA into OUT_DIR (failing on any generator warning; the image responses'
content types are read as bytes, `.ci/client-config.yaml`), imports it, and runs against the live server at
BASE_URL: upload, list with a filter and paging, detail and its 304, rendition bytes, PATCH with If-Match
(and its 412), DELETE, and the typed errors. The client raises on any status the schema does not declare,
so a drifting schema fails here.
"""

from __future__ import annotations

import inspect
import io
import json
import os
import re
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

import attrs
import httpx

CONFIG = Path(__file__).with_name("client-config.yaml")


def generate(schema: Path, out: Path) -> None:
    bin_dir = Path(sys.executable).parent
    # On PATH, so the generator finds its ruff (it formats what it writes).
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    run = subprocess.run(  # noqa: S603 (the generator of this venv, on files we made)
        [
            str(bin_dir / "openapi-python-client"),
            "generate",
            "--path",
            str(schema),
            "--output-path",
            str(out / "imagery_api_client"),  # with no project around it, the package itself
            "--meta",
            "none",
            "--config",
            str(CONFIG),
            "--overwrite",
        ],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    output = run.stdout + run.stderr
    if run.returncode != 0:
        sys.exit(f"openapi-python-client failed:\n{output}")
    # A warning means part of the schema is left out of the client (an answer, a body, a parameter).
    if re.search(r"warning", output, re.IGNORECASE):
        sys.exit(f"openapi-python-client warned:\n{output}")
    print("client generated, no warning")


def png(width: int, height: int) -> bytes:
    """A small opaque PNG, written by hand: this venv has no Pillow (left half red, right half blue)."""
    row = b"".join(
        b"\x00" + b"".join(b"\xff\x00\x00" if x < width // 2 else b"\x00\x00\xff" for x in range(width))
        for _ in range(height)
    )

    def chunk(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")

    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + b"\x08\x02\x00\x00\x00"
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(row))
        + chunk(b"IEND", b"")
    )


def expect(response: Any, status: int) -> Any:
    if response.status_code != status:
        sys.exit(f"expected {status}, got {response.status_code}: {response.content[:300]!r}")
    return response.parsed


def flow(base_url: str) -> None:
    from imagery_api_client import Client
    from imagery_api_client.api.images import (
        images_create,
        images_destroy,
        images_file,
        images_list,
        images_retrieve,
        images_update,
    )
    from imagery_api_client.models import (
        FitEnum,
        Image,
        ImageUpdateRequest,
        ImageUpdateRequestMetadata,
        ImageUploadRequest,
        PaginatedImageList,
        Problem,
    )
    from imagery_api_client.types import UNSET, File

    # Any status the schema does not declare raises instead of coming back untyped. What is sent is kept.
    sent: list[httpx.Request] = []
    client = Client(
        base_url=base_url,
        raise_on_unexpected_status=True,
        httpx_args={"event_hooks": {"request": [sent.append]}},
    )

    # With the key optional (make run: IMAGERY_AUTH=off) no operation demands an AuthenticatedClient.
    operations = [images_create, images_destroy, images_file, images_list, images_retrieve, images_update]
    for operation in operations:
        annotation = str(inspect.signature(operation.sync_detailed).parameters["client"].annotation)
        assert re.search(r"\bClient\b", annotation.replace("AuthenticatedClient", "")), (
            f"{operation.__name__} demands an API key: {annotation}"
        )
    # Every field of the image object is always answered: none may be left out (Unset).
    optional = [
        a.name
        for a in attrs.fields(Image)
        if a.default is not attrs.NOTHING and a.name != "additional_properties"
    ]
    assert not optional, f"the image object's fields typed as optional: {optional}"

    def upload(title: str, **fields: Any) -> Any:
        body = ImageUploadRequest(
            image=File(payload=io.BytesIO(png(80, 40)), file_name="photo.png", mime_type="image/png"),
            title=title,
            **fields,
        )
        return images_create.sync_detailed(client=client, body=body)

    # Upload: 201, the object typed (created_at a datetime), Location naming it.
    created = upload("Beach at dusk", width=40)
    image = expect(created, 201)
    assert isinstance(image, Image), image
    assert (image.width, image.height, image.title) == (40, 20, "Beach at dusk"), image
    assert image.created_at.tzinfo is not None, image.created_at
    assert created.headers["Location"].endswith(f"/images/{image.id}"), created.headers
    other = expect(upload("Beach at dawn", width=20, height=20, fit=FitEnum.COVER), 201)
    assert (other.width, other.height) == (20, 20), other
    expect(upload("Forest"), 201)

    # List with a filter and paging: two beaches, one per page, newest first.
    first = expect(images_list.sync_detailed(client=client, title="beach", page=1, page_size=1), 200)
    assert isinstance(first, PaginatedImageList), first
    assert first.count == 2 and [i.id for i in first.results] == [other.id], first
    assert first.next_ and "page=2" in first.next_, first.next_
    second = expect(images_list.sync_detailed(client=client, title="beach", page=2, page_size=1), 200)
    assert [i.id for i in second.results] == [image.id] and second.next_ is None, second

    # Detail, its ETag, and 304 while it is current.
    detail = images_retrieve.sync_detailed(image.id, client=client)
    assert expect(detail, 200).title == "Beach at dusk"
    etag = detail.headers["ETag"]
    expect(images_retrieve.sync_detailed(image.id, client=client, if_none_match=etag), 304)

    # A rendition's bytes.
    rendition = images_file.sync_detailed(image.id, client=client, width=20, accept="image/png")
    assert expect(rendition, 200).payload.read().startswith(b"\x89PNG"), rendition.content[:8]
    assert rendition.headers["Content-Type"] == "image/png", rendition.headers

    # PATCH with If-Match: sent as JSON, changed; the old ETag then answers a typed 412.
    changed = images_update.sync_detailed(
        image.id, client=client, body=ImageUpdateRequest(title="Sunset"), if_match=etag
    )
    assert expect(changed, 200).title == "Sunset"
    assert sent[-1].headers["Content-Type"] == "application/json", sent[-1].headers
    assert json.loads(sent[-1].content) == {"title": "Sunset"}, sent[-1].content
    assert changed.headers["ETag"] != etag
    stale = images_update.sync_detailed(
        image.id, client=client, body=ImageUpdateRequest(title="Again"), if_match=etag
    )
    assert isinstance(expect(stale, 412), Problem) and stale.parsed.code == "precondition_failed"

    # Metadata: JSON text in the upload form, a typed object in the answer and the edit (which replaces
    # it); the filter (`metadata.KEY`, one parameter per key, which a schema cannot name) as a plain query.
    tagged = expect(upload("Tagged", metadata=json.dumps({"user": "u42", "album": 7})), 201)
    assert tagged.metadata.to_dict() == {"user": "u42", "album": 7}, tagged.metadata
    retagged = images_update.sync_detailed(
        tagged.id,
        client=client,
        body=ImageUpdateRequest(
            metadata=ImageUpdateRequestMetadata.from_dict({"user": "u42", "starred": True})
        ),
    )
    assert expect(retagged, 200).metadata.to_dict() == {"user": "u42", "starred": True}, retagged.parsed
    found = client.get_httpx_client().get(
        "/images", params={"metadata.user": "u42", "metadata.starred": "true"}
    )
    assert found.status_code == 200, found.content
    assert [i.id for i in PaginatedImageList.from_dict(found.json()).results] == [tagged.id], found.json()

    # DELETE, then the image is a typed 404.
    expect(images_destroy.sync_detailed(image.id, client=client), 204)
    gone = expect(images_retrieve.sync_detailed(image.id, client=client), 404)
    assert isinstance(gone, Problem) and gone.status == 404, gone

    # Typed errors: a field out of range names the field; not an image is a 415; a page past the end.
    bad = expect(upload("Too small", width=0), 400)
    assert isinstance(bad, Problem) and bad.errors is not UNSET, bad
    assert [e.field for e in bad.errors] == ["width"], bad.errors
    not_image = images_create.sync_detailed(
        client=client,
        body=ImageUploadRequest(
            image=File(payload=io.BytesIO(b"hello, not an image"), file_name="a.png", mime_type="image/png")
        ),
    )
    assert isinstance(expect(not_image, 415), Problem)
    past = expect(images_list.sync_detailed(client=client, page=999), 404)
    assert isinstance(past, Problem), past
    answers_anywhere(base_url, image.id)
    print(
        "client flow: upload, list (filter, paging), detail (304), rendition, PATCH (If-Match, 412), "
        "metadata (upload, PATCH, filter), DELETE, typed errors: all as the schema says"
    )


def answers_anywhere(base_url: str, image_id: int) -> None:
    """What any operation may answer (401, 429, 503) comes back as a typed problem from every operation.

    A live server answers them only under load or failure, so these come from a stand-in transport; the
    client is the one generated, raising on any status the schema does not declare.
    """
    from imagery_api_client import Client
    from imagery_api_client.api.images import (
        images_create,
        images_destroy,
        images_file,
        images_list,
        images_retrieve,
        images_update,
    )
    from imagery_api_client.models import ImageUpdateRequest, ImageUploadRequest, Problem
    from imagery_api_client.types import File

    for status in (401, 429, 503):

        def answer(request: httpx.Request, status: int = status) -> httpx.Response:
            body = {"type": "about:blank", "title": "-", "status": status, "detail": "-", "code": "-"}
            headers = {"Content-Type": "application/problem+json", "Retry-After": "5"}
            return httpx.Response(status, json=body, headers=headers)

        client = Client(
            base_url=base_url,
            raise_on_unexpected_status=True,
            httpx_args={"transport": httpx.MockTransport(answer)},
        )
        calls = {
            "images_list": lambda c: images_list.sync_detailed(client=c),
            "images_create": lambda c: images_create.sync_detailed(
                client=c,
                body=ImageUploadRequest(image=File(payload=io.BytesIO(png(2, 2)), file_name="a.png")),
            ),
            "images_retrieve": lambda c: images_retrieve.sync_detailed(image_id, client=c),
            "images_update": lambda c: images_update.sync_detailed(
                image_id, client=c, body=ImageUpdateRequest(title="t")
            ),
            "images_destroy": lambda c: images_destroy.sync_detailed(image_id, client=c),
            "images_file": lambda c: images_file.sync_detailed(image_id, client=c),
        }
        for name, call in calls.items():
            parsed = call(client).parsed
            assert isinstance(parsed, Problem) and parsed.status == status, (name, status, parsed)


def main() -> None:
    schema, out, base_url = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    generate(schema, out)
    sys.path.insert(0, str(out))
    flow(base_url)


if __name__ == "__main__":
    main()
