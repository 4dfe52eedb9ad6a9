"""GET /images/{id}/file: renditions of a stored image by width, height, preset and format, through HTTP with
real pixels; stored once, on the filesystem and on S3; limits, rate limits, failures and reconciliation."""

from __future__ import annotations

import errno
import io
import itertools
import re
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import pytest
from django.core.files.storage import storages
from django.core.management import call_command
from django.db import connection
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from PIL import Image as PILImage
from PIL import ImageSequence
from rest_framework_api_key.models import APIKey

from images import pipeline, renditions, storage
from images.pixels import processing
from images.renditions import LADDER, RenditionFormat, Source, ladder_step, resolve
from tests.conftest import Client, name_of, put_stored_file, stored_names
from tests.images import BLUE, GREEN, RED, WHITE, close, corners, gif_animation, meadow, quadrants
from tests.problems import assert_problem

# The encoder settings the suite runs with (config/settings.py's defaults).
DEFAULT_ENCODING = {"jpeg_quality": 85, "webp_quality": 80, "avif_quality": 65, "avif_speed": 8}
CACHE_FOREVER = "public, max-age=31536000, immutable"
AVIF_AND_WEBP = "image/avif,image/webp,image/apng,image/*,*/*;q=0.8"  # what Chromium sends for <img>
WEBP_ONLY = "image/webp,*/*"


@pytest.fixture
def stored(upload: Callable[..., Any]) -> Callable[..., dict[str, Any]]:
    def _stored(image: Any = None, fmt: str = "PNG", **fields: Any) -> dict[str, Any]:
        response = upload(image if image is not None else quadrants((1000, 500)), fmt=fmt, **fields)
        assert response.status_code == 201, response.content
        return response.json()

    return _stored


def body_of(response: Any) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def get(
    api: Client, image: dict[str, Any], query: str = "", accept: str | None = None, **headers: str
) -> Any:
    if accept is not None:
        headers["Accept"] = accept
    return api.get(f"/images/{image['id']}/file{'?' + query if query else ''}", headers=headers)


def pixels(response: Any) -> PILImage.Image:
    assert response.status_code == 200, response.content
    im = PILImage.open(io.BytesIO(body_of(response)))
    im.load()
    return im


def renditions_stored() -> list[str]:
    return [name for name in stored_names() if name.startswith("renditions/")]


def digest(image: dict[str, Any]) -> str:
    return name_of(image).rsplit("/", 1)[-1].split(".")[0]


# --- The ladder ------------------------------------------------------------------------------------


def test_ladder_runs_from_16_to_4096_in_steps_about_15_percent_apart() -> None:
    assert LADDER[0] == 16 and LADDER[-1] == 4096
    assert 30 <= len(LADDER) <= 50  # a few dozen sizes per image, not millions
    ratios = [b / a for a, b in itertools.pairwise(LADDER[1:-1])]
    assert all(1.13 <= r <= 1.17 for r in ratios), ratios
    assert {20, 40, 80, 160, 320, 640, 1280, 2560} <= set(LADDER)


@pytest.mark.parametrize(
    ("asked", "stored", "step"),
    [
        (300, 1000, 320),
        (320, 1000, 320),
        (321, 1000, 368),
        (1, 1000, 16),
        (999, 1000, 1000),
        (5000, 1000, 1000),
        (4097, 6000, 6000),
        (10, 8, 8),
    ],
)
def test_ladder_step_rounds_up_and_never_past_the_stored_size(asked: int, stored: int, step: int) -> None:
    assert ladder_step(asked, stored) == step


# --- Sizes, with real pixels ------------------------------------------------------------------------


def test_width_is_rounded_up_to_the_ladder_keeping_the_aspect_ratio(api: Client, stored: Callable) -> None:
    image = stored()
    im = pixels(get(api, image, "width=300&format=png"))
    assert im.size == (320, 160)
    assert [close(c, e) for c, e in zip(corners(im), (RED, GREEN, BLUE, WHITE), strict=True)] == [True] * 4


def test_height_is_rounded_up_to_the_ladder(api: Client, stored: Callable) -> None:
    im = pixels(get(api, stored(), "height=100&format=png"))
    assert im.size == (212, 106)
    assert close(corners(im)[0], RED) and close(corners(im)[3], WHITE)


@pytest.mark.parametrize("query", ["width=5000", "width=1000", "height=600", "width=10000"])
def test_never_larger_than_the_stored_image(api: Client, stored: Callable, query: str) -> None:
    image = stored()
    response = get(api, image, f"{query}&format=webp")
    assert pixels(response).size == (1000, 500)


def test_the_stored_size_in_the_stored_format_is_the_stored_file(
    api: Client, stored: Callable, served: Callable
) -> None:
    image = stored()
    original = served(image["url"]).served_bytes
    for query in ("", "width=5000&format=png", "format=png", "height=500&format=png"):
        response = get(api, image, query, accept="image/png")
        assert body_of(response) == original, query
        assert response["ETag"] == f'"{digest(image)}"'
    assert renditions_stored() == []  # nothing rendered for them


def test_no_parameters_answers_the_stored_file_with_its_headers(
    api: Client, stored: Callable, served: Callable
) -> None:
    image = stored(quadrants((64, 32)), fmt="JPEG", filename="photo.jpg")
    response = get(api, image)
    assert response.status_code == 200
    assert body_of(response) == served(image["url"]).served_bytes
    assert response["Content-Type"] == "image/jpeg"
    assert int(response["Content-Length"]) == image["size"]
    assert "Vary" not in response  # the stored file whatever the Accept


def test_format_alone_is_the_stored_size_in_that_format(api: Client, stored: Callable) -> None:
    image = stored(fmt="JPEG", filename="photo.jpg")
    auto = get(api, image, "format=auto", accept=AVIF_AND_WEBP)
    assert (pixels(auto).format, pixels(auto).size, auto["Vary"]) == ("AVIF", (1000, 500), "Accept")
    webp = get(api, image, "format=webp")
    assert (pixels(webp).format, pixels(webp).size, "Vary" in webp) == ("WEBP", (1000, 500), False)


def test_a_tiny_image_is_never_enlarged_to_the_first_step(api: Client, stored: Callable) -> None:
    image = stored(quadrants((10, 6)))
    assert pixels(get(api, image, "width=1&format=webp")).size == (10, 6)


# --- Formats and Accept -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("accept", "media_type", "pillow"),
    [
        (AVIF_AND_WEBP, "image/avif", "AVIF"),
        (WEBP_ONLY, "image/webp", "WEBP"),
        ("image/png,image/*;q=0.8", "image/jpeg", "JPEG"),
        ("", "image/jpeg", "JPEG"),
        ("image/avif;q=0, image/webp", "image/webp", "WEBP"),
    ],
)
def test_auto_format_follows_accept_and_varies_with_it(
    api: Client, stored: Callable, accept: str, media_type: str, pillow: str
) -> None:
    image = stored(fmt="JPEG", filename="photo.jpg")
    response = get(api, image, "width=320", accept=accept)
    assert response["Content-Type"] == media_type
    assert response["Vary"] == "Accept"
    assert pixels(response).format == pillow


@pytest.mark.parametrize("fmt", ["jpeg", "png", "webp", "avif"])
def test_explicit_format_is_that_format_with_no_vary(api: Client, stored: Callable, fmt: str) -> None:
    response = get(api, stored(), f"width=160&format={fmt}", accept=WEBP_ONLY)
    assert response["Content-Type"] == f"image/{fmt}"
    assert "Vary" not in response
    im = pixels(response)
    assert im.format == {"jpeg": "JPEG", "png": "PNG", "webp": "WEBP", "avif": "AVIF"}[fmt]
    assert im.size == (160, 80)
    assert close(corners(im)[1], GREEN)


def test_auto_keeps_transparency_where_there_may_be_some(api: Client, stored: Callable) -> None:
    # A transparent PNG: WebP keeps the alpha; without WebP, PNG (never JPEG, which has no alpha).
    im = quadrants((400, 200), mode="RGBA")
    im.putpixel((0, 0), (0, 0, 0, 0))
    image = stored(im)
    assert pixels(get(api, image, "width=160", accept=AVIF_AND_WEBP)).format == "WEBP"
    fallback = pixels(get(api, image, "width=160", accept="*/*"))
    assert fallback.format == "PNG" and fallback.mode == "RGBA"


def test_auto_avif_only_up_to_its_pixel_cap(api: Client, stored: Callable, settings: Any) -> None:
    settings.IMAGE_RENDITION_AUTO_AVIF_MAX_PIXELS = 320 * 160
    image = stored(fmt="JPEG", filename="photo.jpg")
    assert get(api, image, "width=320", accept=AVIF_AND_WEBP)["Content-Type"] == "image/avif"
    assert get(api, image, "width=368", accept=AVIF_AND_WEBP)["Content-Type"] == "image/webp"


def test_avif_over_its_pixel_limit_is_413(api: Client, stored: Callable, settings: Any) -> None:
    settings.IMAGE_MAX_AVIF_PIXELS = 10_000
    body = assert_problem(get(api, stored(), "width=320&format=avif"), 413, "image_too_large")
    assert "IMAGE_MAX_AVIF_PIXELS" in body["detail"]
    assert renditions_stored() == []


# --- Presets ------------------------------------------------------------------------------------------


def stripes() -> PILImage.Image:
    """800x400: black, red, green, black vertical bands of 200: a centred square crop shows no black."""
    im = PILImage.new("RGB", (800, 400), (0, 0, 0))
    im.paste(RED, (200, 0, 400, 400))
    im.paste(GREEN, (400, 0, 600, 400))
    return im


def test_thumb_preset_is_a_200_square_cropped_from_the_centre(api: Client, stored: Callable) -> None:
    im = pixels(get(api, stored(stripes()), "preset=thumb&format=png"))
    assert im.size == (200, 200)
    rgb = im.convert("RGB")
    for x, colour in ((2, RED), (97, RED), (103, GREEN), (197, GREEN)):
        for y in (2, 100, 197):
            assert close(rgb.getpixel((x, y)), colour, 10), (x, y, rgb.getpixel((x, y)))


def test_thumb_of_a_smaller_image_crops_without_enlarging(api: Client, stored: Callable) -> None:
    assert pixels(get(api, stored(stripes().resize((160, 80))), "preset=thumb&format=png")).size == (80, 80)


@pytest.mark.parametrize(("preset", "size"), [("small", (480, 240)), ("large", (800, 400))])
def test_width_presets_scale_and_never_enlarge(
    api: Client, stored: Callable, preset: str, size: tuple
) -> None:
    assert pixels(get(api, stored(stripes()), f"preset={preset}&format=webp")).size == size


def test_presets_come_from_the_settings(api: Client, stored: Callable, settings: Any) -> None:
    settings.IMAGE_PRESETS = {"banner": {"width": 400, "height": 100, "fit": "cover"}}
    image = stored(stripes())
    assert image["presets"] == {"banner": f"http://testserver/images/{image['id']}/file?preset=banner"}
    im = pixels(get(api, image, "preset=banner&format=png"))
    assert im.size == (400, 100)
    assert close(im.convert("RGB").getpixel((0, 50)), (0, 0, 0))  # 800x200 from the centre: black edges
    assert_problem(get(api, image, "preset=thumb"), 400, field="preset")


def test_rendition_names_follow_the_convention(api: Client, stored: Callable) -> None:
    image = stored(fmt="JPEG", filename="photo.jpg")
    get(api, image, "width=300", accept=WEBP_ONLY)
    get(api, image, "height=100&format=avif")
    get(api, image, "preset=thumb", accept="*/*")
    prefix = re.escape(f"renditions/{digest(image)}/")
    # <key>.<recipe>.<ext>: the recipe is a digest of what made the file (see the section on settings).
    expected = [rf"{prefix}h106\.[0-9a-f]{{10}}\.avif", rf"{prefix}thumb\.[0-9a-f]{{10}}\.jpg"]
    expected.append(rf"{prefix}w320\.[0-9a-f]{{10}}\.webp")
    names = renditions_stored()
    assert len(names) == 3 and all(re.fullmatch(p, n) for p, n in zip(expected, names, strict=True)), names


# --- Animation --------------------------------------------------------------------------------------


def animation() -> bytes:
    frames = [PILImage.new("RGB", (400, 200), colour) for colour in (RED, GREEN, BLUE)]
    return gif_animation(frames, duration=100, loop=0)


@pytest.mark.parametrize(
    ("query", "accept", "pillow", "frames"),
    [
        ("width=160", AVIF_AND_WEBP, "WEBP", 3),  # auto never picks AVIF for what may be an animation
        ("width=160", "*/*", "GIF", 3),
        ("width=160&format=webp", "", "WEBP", 3),
        ("width=160&format=png", "", "PNG", 3),  # APNG
        ("width=160&format=jpeg", "", "JPEG", 1),
        ("width=160&format=avif", "", "AVIF", 1),
    ],
)
def test_animation_stays_animated_in_formats_that_animate(
    api: Client, stored: Callable, query: str, accept: str, pillow: str, frames: int
) -> None:
    image = stored(animation(), filename="clip.gif")
    im = pixels(get(api, image, query, accept=accept))
    assert (im.format, getattr(im, "n_frames", 1), im.size) == (pillow, frames, (160, 80))
    shown = [frame.convert("RGB").getpixel((80, 40)) for frame in ImageSequence.Iterator(im)]
    assert all(close(c, e) for c, e in zip(shown, (RED, GREEN, BLUE), strict=False)), shown


# --- Caching, conditional requests, HEAD, headers -----------------------------------------------------


@pytest.mark.parametrize("query", ["width=320", "width=320&format=webp", "preset=thumb", ""])
def test_file_headers(api: Client, stored: Callable, query: str) -> None:
    response = get(api, stored(), query, accept=WEBP_ONLY)
    assert response.status_code == 200
    assert response["Cache-Control"] == CACHE_FOREVER
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Security-Policy"] == "default-src 'none'; sandbox"
    assert int(response["Content-Length"]) == len(body_of(response))
    assert re.fullmatch(r'"[0-9a-f]{64}(\.[a-z0-9_-]+\.[0-9a-f]{10}\.[a-z]+)?"', response["ETag"])


@pytest.mark.parametrize("rendered_first", [True, False], ids=["stored", "not yet rendered"])
def test_if_none_match_is_304_with_the_headers(api: Client, stored: Callable, rendered_first: bool) -> None:
    image = stored()
    first = get(api, image, "width=320&format=webp")
    if not rendered_first:
        storage.delete_prefix(f"renditions/{digest(image)}/")
    response = get(api, image, "width=320&format=webp", **{"If-None-Match": first["ETag"]})
    assert response.status_code == 304
    assert body_of(response) == b""
    assert response["ETag"] == first["ETag"] and response["Cache-Control"] == CACHE_FOREVER
    if not rendered_first:
        assert renditions_stored() == []  # a 304 never renders
    auto = get(api, image, "width=320", accept=WEBP_ONLY)
    again = get(api, image, "width=320", accept=WEBP_ONLY, **{"If-None-Match": auto["ETag"]})
    assert again.status_code == 304 and again["Vary"] == "Accept"


def test_etags_differ_between_renditions(api: Client, stored: Callable) -> None:
    image = stored()
    queries = ("width=320&format=webp", "width=160&format=webp", "width=320&format=png", "")
    etags = {get(api, image, query)["ETag"] for query in queries}
    assert len(etags) == 4


def test_head_has_the_headers_of_get_and_no_body(api: Client, stored: Callable) -> None:
    image = stored()
    get(api, image, "width=320&format=webp")
    head = api.head(f"/images/{image['id']}/file?width=320&format=webp")
    assert head.status_code == 200 and body_of(head) == b""
    response = get(api, image, "width=320&format=webp")
    for header in ("Content-Type", "Content-Length", "ETag", "Cache-Control", "X-Content-Type-Options"):
        assert head[header] == response[header], header


@pytest.mark.parametrize("query", ["width=320&format=webp", "width=640", "preset=thumb&format=png"])
def test_head_never_renders_and_answers_the_headers_without_a_length(
    api: Client, stored: Callable, settings: Any, query: str
) -> None:
    image = stored()
    for _ in range(3):
        head = api.head(f"/images/{image['id']}/file?{query}", headers={"Accept": WEBP_ONLY})
        assert head.status_code == 200 and body_of(head) == b""
        assert not head.has_header("Content-Length")  # unknown until rendered
    assert renditions_stored() == []
    response = get(api, image, query, accept=WEBP_ONLY)
    assert response.status_code == 200
    for header in ("Content-Type", "ETag", "Cache-Control", "X-Content-Type-Options", "Content-Disposition"):
        assert head[header] == response[header], header
    assert head.get("Vary") == response.get("Vary")


def test_a_stored_rendition_is_streamed_from_storage_with_the_same_bytes(
    api: Client, stored: Callable
) -> None:
    image = stored()
    first = get(api, image, "width=320&format=webp")
    assert not first.streaming  # rendered just now: the bytes in hand
    second = get(api, image, "width=320&format=webp")
    assert second.streaming  # read from the store
    assert body_of(second) == body_of(first)
    assert len(renditions_stored()) == 1


def test_a_stored_rendition_costs_one_query_and_no_render(
    api: Client, stored: Callable, django_assert_num_queries: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    image = stored()
    get(api, image, "width=320&format=webp")
    monkeypatch.setattr("images.pixels.processing.render", None)  # any render now fails loudly
    with django_assert_num_queries(1):
        assert get(api, image, "width=320&format=webp").status_code == 200


def test_identical_images_share_their_renditions(api: Client, stored: Callable) -> None:
    first, second = stored(title="first"), stored(title="second")
    assert body_of(get(api, first, "width=320&format=webp")) == body_of(
        get(api, second, "width=320&format=webp")
    )
    assert len(renditions_stored()) == 1


def test_a_320_rendition_of_a_big_jpeg_decodes_at_a_reduced_dct_scale(
    api: Client, stored: Callable, monkeypatch: pytest.MonkeyPatch
) -> None:
    image = stored(quadrants((2400, 1800)), fmt="JPEG", filename="photo.jpg")
    decoded: list[tuple[int, int]] = []
    real_decode = processing.decode

    def spy(im: PILImage.Image, frame: int = 0) -> None:
        real_decode(im, frame)
        decoded.append(im.size)

    monkeypatch.setattr("images.pixels.processing.decode", spy)
    assert pixels(get(api, image, "width=320&format=jpeg")).size == (320, 240)
    assert decoded == [(600, 450)]  # a quarter of 2400x1800, still 1.25x the output or more


# --- Bad requests -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("width=0", "width"),
        ("width=-5", "width"),
        ("width=abc", "width"),
        ("width=%C2%B2", "width"),  # ², which isdigit() accepts
        ("width=", "width"),
        ("width=1.5", "width"),
        ("width=10001", "width"),
        ("width=99999999999999999999999", "width"),
        ("height=0", "height"),
        ("format=gif", "format"),
        ("format=bmp", "format"),
        ("format=", "format"),
        ("preset=nope", "preset"),
        ("preset=", "preset"),
        ("preset=%00", "preset"),
        ("width=100&height=100", "height"),
        ("preset=thumb&width=100", "preset"),
        ("preset=thumb&height=100", "preset"),
    ],
)
def test_bad_values_are_400_naming_the_parameter(
    api: Client, stored: Callable, query: str, field: str
) -> None:
    assert_problem(get(api, stored(quadrants((40, 20))), query), 400, field=field)
    assert renditions_stored() == []


QUERY_VALUES = st.one_of(
    st.integers(-5, 20_000).map(str),
    st.sampled_from(["", "auto", "jpeg", "png", "webp", "avif", "gif", "thumb", "small", "1e3", "²", "0x10"]),
    st.text(max_size=12),
)


@given(
    params=st.dictionaries(
        st.sampled_from(["width", "height", "preset", "format"]), QUERY_VALUES, max_size=3
    ),
    accept=st.sampled_from(["", AVIF_AND_WEBP, WEBP_ONLY, "image/avif", "*/*", "garbage;q=x"]),
)
@hypothesis_settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
def test_any_query_is_an_image_or_a_problem_never_a_5xx(
    api: Client, small_image: dict[str, Any], params: dict[str, str], accept: str
) -> None:
    response = get(api, small_image, urlencode(params), accept=accept)
    assert response.status_code in (200, 400), body_of(response)[:300]
    if response.status_code == 200:
        assert pixels(response).size[0] <= 40
    else:
        assert_problem(response, 400)


@pytest.fixture
def small_image(stored: Callable, settings: Any) -> dict[str, Any]:
    settings.THROTTLE_RENDER_CPU_SECONDS_PER_ADDRESS = ""  # the budgets have tests of their own
    return stored(quadrants((40, 20)))


@pytest.mark.parametrize("path", ["/images/999/file", "/images/99999999999999999999/file", "/images/0/file"])
def test_unknown_image_is_404(api: Client, path: str) -> None:
    assert_problem(api.get(path), 404)


def test_accept_naming_only_an_image_type_is_no_406(api: Client, stored: Callable) -> None:
    image = stored()
    assert get(api, image, "width=160", accept="image/avif").status_code == 200
    assert_problem(get(api, image, "width=abc", accept="image/avif"), 400, field="width")


def test_other_methods_are_405(api: Client, stored: Callable) -> None:
    assert_problem(api.post(f"/images/{stored()['id']}/file"), 405)


# --- Access, rate limits, failures ----------------------------------------------------------------


def test_reads_follow_imagery_auth(api: Client, stored: Callable, settings: Any) -> None:
    image = stored()
    settings.IMAGERY_AUTH = "all"
    _, key = APIKey.objects.create_key(name="reader")
    assert_problem(get(api, image, "width=160"), 401)
    assert get(api, image, "width=160", Authorization=f"Bearer {key}").status_code == 200


STORE_FAULTS = [
    OSError(errno.ENOSPC, "No space left on device"),
    ConnectionError("the store does not answer"),
]


@pytest.mark.parametrize("fault", STORE_FAULTS, ids=["disk full", "down"])
def test_storage_failing_on_save_answers_503_with_retry_after(
    api: Client, stored: Callable, monkeypatch: pytest.MonkeyPatch, fault: Exception
) -> None:
    image = stored()

    def failing_save(self: Any, name: str, content: Any) -> str:
        raise fault

    with monkeypatch.context() as patch:
        patch.setattr(type(storages["default"]), "_save", failing_save)
        assert_problem(get(api, image, "width=320&format=webp"), 503, "storage_unavailable")
    assert renditions_stored() == []
    assert get(api, image, "width=320&format=webp").status_code == 200


def test_storage_failing_on_read_answers_503(
    api: Client, stored: Callable, monkeypatch: pytest.MonkeyPatch
) -> None:
    image = stored()

    def failing_open(self: Any, name: str, mode: str = "rb") -> Any:
        raise ConnectionError("the store does not answer")

    monkeypatch.setattr(type(storages["default"]), "_open", failing_open)
    assert_problem(get(api, image, "width=320&format=webp"), 503, "storage_unavailable")
    assert_problem(get(api, image), 503, "storage_unavailable")


# --- Concurrent first requests --------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_concurrent_first_renders_all_answer_the_same_whole_bytes(
    api: Client, stored: Callable, monkeypatch: pytest.MonkeyPatch
) -> None:
    image = stored()
    source = Source(name=name_of(image), width=image["width"], height=image["height"], format=image["format"])
    spec = resolve(source, width=640, output_format=RenditionFormat.WEBP)
    threads = 4
    # Every thread has rendered before any stores: all of them race to store the same name.
    barrier = threading.Barrier(threads, timeout=30)
    real_store_as = storage.store_as

    def store_together(name: str, data: bytes, *, media_type: str) -> bool:
        barrier.wait()
        return real_store_as(name, data, media_type=media_type)

    monkeypatch.setattr(storage, "store_as", store_together)
    answers: list[bytes] = []
    errors: list[BaseException] = []

    def first_request() -> None:
        try:
            assert renditions.rendition_open(source, spec) is None
            answers.append(renditions.rendition_create(source, spec).data or b"")
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            connection.close()  # each thread's own

    workers = [threading.Thread(target=first_request) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert errors == []
    assert len(answers) == threads and len(set(answers)) == 1
    assert PILImage.open(io.BytesIO(answers[0])).size == (640, 320)
    assert renditions_stored() == [spec.name(source)]  # one file, no copies left under other names
    assert body_of(get(api, image, "width=640&format=webp")) == answers[0]


# --- The object's srcset and presets --------------------------------------------------------------


def test_object_lists_srcset_up_to_its_width_and_its_presets(api: Client, stored: Callable) -> None:
    image = stored(quadrants((700, 350)))
    base = f"http://testserver/images/{image['id']}/file"
    entries = [entry.rsplit(" ", 1) for entry in image["srcset"].split(", ")]
    widths = [int(w.removesuffix("w")) for _, w in entries]
    assert widths == [w for w in LADDER if w < 700] + [700]
    assert all(url == f"{base}?width={w}" for (url, _), w in zip(entries, widths, strict=True))
    assert image["presets"] == {name: f"{base}?preset={name}" for name in ("thumb", "small", "large")}
    for source in (api.get(f"/images/{image['id']}").json(), api.get("/images").json()["results"][0]):
        assert (source["srcset"], source["presets"]) == (image["srcset"], image["presets"])
    # Every width it lists answers that width.
    for url, width in (entries[0], entries[len(entries) // 2], entries[-1]):
        assert pixels(
            api.get(url.removeprefix("http://testserver"), headers={"Accept": WEBP_ONLY})
        ).width == int(width.removesuffix("w"))


# --- Settings that change what is made ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "setting", "value", "options"),
    [
        ("width=320&format=jpeg", "IMAGE_JPEG_QUALITY", 20, {"jpeg_quality": 20}),
        ("width=320&format=webp", "IMAGE_WEBP_QUALITY", 20, {"webp_quality": 20}),
        ("width=160&format=avif", "IMAGE_AVIF_QUALITY", 20, {"avif_quality": 20}),
        ("width=160&format=avif", "IMAGE_AVIF_SPEED", 10, {"avif_speed": 10}),
    ],
)
def test_a_changed_encoder_setting_makes_a_new_rendition_and_reconcile_removes_the_old_one(
    api: Client,
    stored: Callable,
    served: Callable,
    settings: Any,
    query: str,
    setting: str,
    value: int,
    options: dict,
) -> None:
    image = stored(meadow(), fmt="JPEG", filename="meadow.jpg")
    original = served(image["url"]).served_bytes
    before = get(api, image, query)
    old_names = renditions_stored()

    setattr(settings, setting, value)
    after = get(api, image, query)
    assert after.status_code == 200
    assert after["ETag"] != before["ETag"]
    # What a browser or CDN holding the old copy asks: it is no longer current.
    assert get(api, image, query, **{"If-None-Match": before["ETag"]}).status_code == 200
    # The bytes the pipeline makes with the new setting, not the file stored under the old one.
    width = int(query.split("&")[0].removeprefix("width="))
    output = processing.OutputFormat(query.rsplit("=", 1)[1])
    expected = processing.render(
        io.BytesIO(original),
        width=width,
        output_format=output,
        options=pipeline.encode_options(),
        limits=pipeline.limits(),
    )
    assert pipeline.encode_options() == processing.EncodeOptions(**{**DEFAULT_ENCODING, **options})
    assert body_of(after) == expected.data != body_of(before)

    stale = reconcile_storage()
    for name in old_names:
        assert f"stale rendition {name} (made with presets or encoder settings since changed)" in stale
    assert "2 renditions: 0 orphans (0 removed), 1 stale (0 removed)." in stale
    fixed = reconcile_storage("--fix")
    assert all(f"removed stale rendition {name}" in fixed for name in old_names)
    assert len(renditions_stored()) == 1 and not set(old_names) & set(renditions_stored())
    assert body_of(get(api, image, query)) == expected.data  # the current one stays and is served


def test_a_changed_preset_makes_a_new_rendition_and_reconcile_removes_the_old_one(
    api: Client, stored: Callable, settings: Any
) -> None:
    settings.IMAGE_PRESETS = {"card": {"width": 200, "height": 100, "fit": "cover"}}
    image = stored()
    before = get(api, image, "preset=card&format=png")
    assert pixels(before).size == (200, 100)
    old_names = renditions_stored()

    settings.IMAGE_PRESETS = {"card": {"width": 120, "height": 120, "fit": "cover"}}
    after = get(api, image, "preset=card&format=png")
    assert pixels(after).size == (120, 120)
    assert after["ETag"] != before["ETag"]
    assert get(api, image, "preset=card&format=png", **{"If-None-Match": before["ETag"]}).status_code == 200

    assert f"stale rendition {old_names[0]}" in reconcile_storage()
    assert f"removed stale rendition {old_names[0]}" in reconcile_storage("--fix")
    assert len(renditions_stored()) == 1 and renditions_stored() != old_names


def test_an_unchanged_setting_keeps_the_name_and_etag(api: Client, stored: Callable, settings: Any) -> None:
    image = stored()
    first = get(api, image, "width=320&format=jpeg")
    settings.IMAGE_WEBP_QUALITY = 20  # not a JPEG setting
    settings.IMAGE_PRESETS = {**settings.IMAGE_PRESETS, "banner": {"width": 400}}
    assert get(api, image, "width=320&format=jpeg", **{"If-None-Match": first["ETag"]}).status_code == 304
    assert "0 stale" in reconcile_storage()


def test_reconcile_calls_renditions_of_a_gone_preset_or_an_old_name_stale(
    api: Client, stored: Callable, settings: Any
) -> None:
    image = stored()
    get(api, image, "preset=small&format=webp")
    get(api, image, "width=320&format=webp")
    before_recipes = f"renditions/{digest(image)}/w320.webp"  # named before names carried a recipe
    off_ladder = f"renditions/{digest(image)}/w321.0123456789.webp"  # no request gets this key
    for name in (before_recipes, off_ladder):
        put_stored_file(name, b"old")
    settings.IMAGE_PRESETS = {"large": {"width": 1600}}  # `small` is gone
    small = [name for name in renditions_stored() if "/small." in name]
    report = reconcile_storage()
    for name in (*small, before_recipes, off_ladder):
        assert f"stale rendition {name}" in report
    assert "4 renditions: 0 orphans (0 removed), 3 stale (0 removed)." in report
    reconcile_storage("--fix")
    assert [name.rsplit("/", 1)[1].split(".")[0] for name in renditions_stored()] == ["w320"]


# --- Reconciliation and deletion --------------------------------------------------------------------


def reconcile_storage(*args: str) -> str:
    out = io.StringIO()
    call_command("reconcile_storage", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_reconcile_finds_renditions_whose_source_no_row_uses_and_fix_removes_them(
    api: Client, stored: Callable
) -> None:
    image = stored()
    get(api, image, "width=320&format=webp")
    kept = renditions_stored()
    orphan = "renditions/" + "ab" * 32 + "/w320.0123456789.webp"
    put_stored_file(orphan, b"a rendition of a deleted image")
    report = reconcile_storage()
    assert f"orphan rendition {orphan} (no row uses its source)" in report
    assert "2 renditions: 1 orphans (0 removed), 0 stale (0 removed)." in report
    assert "0 orphans (0 removed), 0 lost files." in report  # the images themselves match

    report = reconcile_storage("--fix")
    assert f"removed orphan rendition {orphan}" in report
    assert renditions_stored() == kept
    assert "1 renditions: 0 orphans" in reconcile_storage()


def test_delete_renditions_removes_every_rendition_of_a_source(api: Client, stored: Callable) -> None:
    kept, gone = stored(quadrants((300, 200))), stored()
    for image in (kept, gone):
        get(api, image, "width=160&format=webp")
        get(api, image, "preset=thumb&format=png")
    assert renditions.delete_renditions(digest(gone)) is True
    assert [name.split("/")[1] for name in renditions_stored()] == [digest(kept)] * 2
    assert renditions.delete_renditions(digest(gone)) is True  # nothing left: nothing to do
    assert get(api, gone, "width=160&format=webp").status_code == 200  # rendered again when asked


def test_delete_renditions_reports_a_failing_store(
    api: Client, stored: Callable, monkeypatch: pytest.MonkeyPatch
) -> None:
    image = stored()
    get(api, image, "width=160&format=webp")

    def failing_delete(*args: Any, **kwargs: Any) -> None:
        raise ConnectionError("the store does not answer")

    with monkeypatch.context() as patch:
        patch.setattr(type(storages["default"]), "delete", failing_delete)
        if not storage.is_local():  # S3: a prefix goes in DeleteObjects requests (storage.delete_prefix)
            patch.setattr(storages["default"].connection.meta.client, "delete_objects", failing_delete)
        assert renditions.delete_renditions(digest(image)) is False
    assert len(renditions_stored()) == 1


# --- The schema --------------------------------------------------------------------------------------


def test_schema_documents_the_file_endpoint_and_every_parameter(api: Client) -> None:
    schema = api.get("/api/schema/", {"format": "json"}).json()
    operation = schema["paths"]["/images/{image_id}/file"]["get"]
    params = {(p["in"], p["name"]): p for p in operation["parameters"]}
    assert {("query", n) for n in ("width", "height", "preset", "format")} <= params.keys()
    assert {("header", "Accept"), ("header", "If-None-Match"), ("path", "image_id")} <= params.keys()
    assert params["query", "width"]["schema"] == {"type": "integer", "minimum": 1, "maximum": 10000}
    assert params["query", "format"]["schema"]["enum"] == ["auto", "jpeg", "png", "webp", "avif"]
    assert all(params["query", n].get("description") for n in ("width", "height", "preset", "format"))
    content = operation["responses"]["200"]["content"]
    assert set(content) == {"image/jpeg", "image/png", "image/gif", "image/webp", "image/avif"}
    assert {"304", "400", "404", "429", "503"} <= operation["responses"].keys()
    image = schema["components"]["schemas"]["Image"]["properties"]
    assert image["srcset"]["type"] == "string" and image["presets"]["type"] == "object"


def preset_parameter(api: Client) -> dict[str, Any] | None:
    schema = api.get("/api/schema/", {"format": "json"}).json()
    parameters = schema["paths"]["/images/{image_id}/file"]["get"]["parameters"]
    return next((p for p in parameters if p["in"] == "query" and p["name"] == "preset"), None)


def test_schema_names_the_configured_presets(api: Client, settings: Any) -> None:
    parameter = preset_parameter(api)
    assert parameter is not None and parameter["schema"]["enum"] == ["large", "small", "thumb"]
    settings.IMAGE_PRESETS = {"card": {"width": 300}, "banner": {"width": 900, "height": 200, "fit": "cover"}}
    parameter = preset_parameter(api)
    assert parameter is not None and parameter["schema"]["enum"] == ["banner", "card"]


def test_without_presets_the_schema_has_no_preset_and_one_is_refused(
    api: Client, stored: Callable, settings: Any
) -> None:
    settings.IMAGE_PRESETS = {}
    assert preset_parameter(api) is None
    assert_problem(get(api, stored(), "preset=thumb"), 400, field="preset")


@pytest.mark.parametrize(
    "raw",
    [
        [],
        {"w320": {"width": 320}},  # would share its name with ?width=320
        {"Thumb": {"width": 200}},
        {"thumb": {"width": 0}},
        {"thumb": {"width": "200"}},
        {"thumb": {}},
        {"thumb": {"width": 200, "fit": "cover"}},  # a crop needs a box
        {"thumb": {"width": 200, "height": 200, "fit": "squash"}},
        {"thumb": {"width": 200, "depth": 3}},
    ],
)
def test_a_bad_preset_setting_is_refused(raw: Any) -> None:
    with pytest.raises(ValueError):
        renditions.presets_from_setting(raw)
