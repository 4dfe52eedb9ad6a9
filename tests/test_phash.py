"""Duplicates and near-duplicates: the perceptual hash (images/pixels/hashing.py) and its robustness, exact
duplicates at upload (`duplicate_of`, `on_duplicate=reuse`), `GET /images?similar_to=ID&distance=D` against
a brute-force answer, and the backfill of older rows."""

# ruff: noqa: F811 (the fixtures of tests/private.py, named as parameters)

from __future__ import annotations

import io
import itertools
import math
import random
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from django.core.management import call_command
from django.db import connection
from django.test.client import MULTIPART_CONTENT
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image as PILImage

from images import selectors
from images.models import Image
from images.pixels import hashing, placeholders
from images.selectors import image_similar
from tests.conftest import stored_names
from tests.images import encode, quadrants
from tests.phash_pictures import CROPS, TRANSFORMATIONS, generated, picture_set
from tests.private import auth, keys, private, upload_as, who  # noqa: F401 (fixtures)
from tests.problems import assert_problem


def phash_of(im: PILImage.Image) -> int:
    """The hash as an upload computes it: from the small version of the pixels."""
    return hashing.phash(placeholders.small_version(im))


# --- The hash ------------------------------------------------------------------------------------


def test_the_dct_is_the_dct_ii_sum() -> None:
    """The two matrix products give the DCT-II's coefficients, as its definition sums them."""
    gray = np.random.default_rng(7).integers(0, 256, (hashing.SIZE, hashing.SIZE)).astype(float)
    n = hashing.SIZE
    for u, v in [(0, 0), (0, 5), (3, 1), (7, 7)]:
        direct = sum(
            gray[x, y]
            * math.cos(math.pi * u * (2 * x + 1) / (2 * n))
            * math.cos(math.pi * v * (2 * y + 1) / (2 * n))
            for x in range(n)
            for y in range(n)
        )
        assert (hashing._DCT @ gray @ hashing._DCT_T)[u, v] == pytest.approx(direct)


def test_the_hash_sets_the_bits_above_the_median_first_bit_first() -> None:
    # A horizontal ramp: its DCT has energy only in the first row (v = 0), and the DC term is the largest.
    ramp = np.tile(np.arange(hashing.SIZE, dtype=float) * 8, (hashing.SIZE, 1))
    value = hashing.phash_of_gray(ramp)
    assert value >> 63 == 1  # the DC coefficient, row 0 column 0, is the most significant bit
    assert hashing.to_hex(value) == f"{value:016x}" and len(hashing.to_hex(value)) == 16


def test_a_transparent_picture_is_hashed_on_white() -> None:
    shape = PILImage.new("RGBA", (64, 64), (0, 0, 0, 0))
    shape.paste((0, 0, 160, 255), (8, 8, 40, 56))
    on_white = PILImage.new("RGB", (64, 64), "white")
    on_white.paste((0, 0, 160), (8, 8, 40, 56))
    assert hashing.phash(shape) == hashing.phash(on_white)


def test_bands_cover_the_hash_and_their_radii_find_every_hash_within_the_distance() -> None:
    rng = random.Random(3)
    for _ in range(200):
        value = rng.getrandbits(64)
        assert sum(b << s for b, s in zip(hashing.bands(value), (42, 21, 0), strict=True)) == value
        assert hashing.bands(hashing.to_signed(value)) == hashing.bands(value)
        distance = rng.randrange(17)
        near = value
        for bit in rng.sample(range(64), distance):
            near ^= 1 << bit
        probes = hashing.probes(value, distance)
        assert any(b in set(p) for b, p in zip(hashing.bands(near), probes, strict=True))


# --- Robustness: the same picture changed stays near, different pictures stay far ------------------

PICTURES = picture_set()


@pytest.mark.parametrize("change", sorted(TRANSFORMATIONS))
def test_the_same_picture_changed_is_within_distance_8(change: str) -> None:
    worst = max(hashing.distance(phash_of(im), phash_of(TRANSFORMATIONS[change](im))) for im in PICTURES)
    assert worst <= 8, f"{change}: {worst} bits"


def test_different_pictures_of_the_set_are_not_within_distance_8() -> None:
    hashes = [phash_of(im) for im in PICTURES]
    distances = [hashing.distance(a, b) for a, b in itertools.combinations(hashes, 2)]
    false_positives = sum(d <= 8 for d in distances)
    # The README reports this rate (0 of 1,953 pairs) and the closest pair.
    assert false_positives == 0, f"{false_positives} of {len(distances)} pairs within 8"


def test_harder_crops_are_measured(capsys: pytest.CaptureFixture[str]) -> None:
    """Not asserted within 8 (the README reports these): how far harder crops move the hash."""
    for name, crop in CROPS.items():
        distances = sorted(hashing.distance(phash_of(im), phash_of(crop(im))) for im in PICTURES)
        within = sum(d <= 8 for d in distances) / len(distances)
        with capsys.disabled():
            median = distances[len(distances) // 2]
            print(f"\ncrop {name}: median {median}, max {distances[-1]}, {within:.0%} <= 8")
        assert distances[-1] < 32  # still far nearer than an unrelated picture (about 32)


# --- Through the API --------------------------------------------------------------------------


def post(api: Any, im: PILImage.Image, fmt: str = "PNG", key: str | None = None, **fields: Any) -> Any:
    file = io.BytesIO(encode(im, fmt))
    file.name = f"picture.{fmt.lower()}"
    return api.post("/images", {"image": file, **fields}, content_type=MULTIPART_CONTENT, **auth(key))


def test_every_image_object_has_its_phash(api: Any, posted: Callable[..., dict[str, Any]]) -> None:
    body = posted(generated(1), fmt="JPEG")
    assert len(body["phash"]) == 16 and int(body["phash"], 16) >= 0
    assert body["phash"] == body["phash"].lower()
    assert api.get(f"/images/{body['id']}").json()["phash"] == body["phash"]
    assert api.get("/images").json()["results"][0]["phash"] == body["phash"]


def test_an_animation_is_hashed_by_its_first_frame(posted: Callable[..., dict[str, Any]]) -> None:
    first, second = generated(2, (120, 90)), generated(3, (120, 90))
    raw = encode(first, "GIF", save_all=True, append_images=[second], duration=100)
    animated = posted(raw, fmt="GIF", filename="a.gif")
    still = posted(encode(first, "GIF"), fmt="GIF", filename="b.gif")
    assert hashing.distance(int(animated["phash"], 16), int(still["phash"], 16)) <= 2


def similar(api: Any, image_id: int, key: str | None = None, **params: Any) -> Any:
    return api.get("/images", {"similar_to": image_id, **params}, **auth(key))


def test_similar_to_finds_the_same_picture_changed_nearest_first(api: Any) -> None:
    original = generated(10)
    base = post(api, original).json()
    near = {name: post(api, change(original), title=name).json() for name, change in TRANSFORMATIONS.items()}
    others = [post(api, generated(seed), title=f"other {seed}").json() for seed in range(11, 15)]
    response = similar(api, base["id"])
    assert response.status_code == 200
    body = response.json()
    found = [item["id"] for item in body["results"]]
    assert sorted(found) == sorted(b["id"] for b in near.values())
    assert not {o["id"] for o in others} & set(found)
    assert base["id"] not in found
    distances = [hashing.distance(int(base["phash"], 16), int(i["phash"], 16)) for i in body["results"]]
    assert distances == sorted(distances)
    assert body["count"] == len(found)
    # distance=0: only identical hashes.
    exact = similar(api, base["id"], distance=0).json()["results"]
    assert all(item["phash"] == base["phash"] for item in exact)


def test_similar_to_pages_and_composes_with_title(api: Any, many: Callable[[int], list[int]]) -> None:
    ids = sorted(many(7))  # clones of one upload: one file; given its hash
    first = Image.objects.get(pk=ids[0])  # the upload
    Image.objects.filter(pk__in=ids).update(
        phash=first.phash,
        phash_band0=first.phash_band0,
        phash_band1=first.phash_band1,
        phash_band2=first.phash_band2,
    )
    first = similar(api, ids[0], page_size=4).json()
    assert first["count"] == 6 and len(first["results"]) == 4 and first["next"]
    second = api.get(first["next"].removeprefix("http://testserver")).json()
    assert [i["id"] for i in first["results"] + second["results"]] == sorted(ids[1:])
    titled = similar(api, ids[0], title="image 3").json()
    assert [i["id"] for i in titled["results"]] == [ids[3]]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"distance": "17"}, "distance"),
        ({"distance": "-1"}, "distance"),
        ({"distance": "²"}, "distance"),
        ({"distance": "8.0"}, "distance"),
        ({"distance": ""}, "distance"),
        ({"similar_to": "abc"}, "similar_to"),
        ({"similar_to": "0"}, "similar_to"),
        ({"similar_to": str(2**63)}, "similar_to"),
    ],
)
def test_bad_similar_to_parameters_are_400(
    api: Any, create: Callable[..., Any], params: Any, field: str
) -> None:
    image = create()
    query = {"similar_to": str(image["id"]), **params}
    assert_problem(api.get("/images", query), 400, field=field)


def test_similar_lists_are_numbered_pages_a_cursor_points_nowhere(
    api: Any, create: Callable[..., Any]
) -> None:
    image = create()
    # An empty cursor is any list's first page; another list's cursor is no position in this one.
    assert api.get("/images", {"similar_to": str(image["id"]), "cursor": ""}).status_code == 200
    cursor = api.get("/images", {"cursor": "", "page_size": "1"}).json()
    assert_problem(api.get("/images", {"similar_to": str(image["id"]), "cursor": "abc"}), 404)
    assert cursor["results"]


def test_repeated_parameters_are_400(api: Any, create: Callable[..., Any]) -> None:
    image = create()
    assert_problem(api.get(f"/images?similar_to={image['id']}&distance=2&distance=3"), 400, field="distance")
    assert_problem(api.get(f"/images?similar_to={image['id']}&similar_to=1"), 400, field="similar_to")


def test_distance_without_similar_to_changes_nothing_but_a_bad_one_is_400(
    api: Any, create: Callable[..., Any]
) -> None:
    create()
    assert api.get("/images", {"distance": "4"}).json() == api.get("/images").json()
    assert_problem(api.get("/images", {"distance": "17"}), 400, field="distance")


@pytest.mark.parametrize("distance", ["0", "16"])
def test_distance_bounds_are_accepted(api: Any, create: Callable[..., Any], distance: str) -> None:
    image = create()
    assert similar(api, image["id"], distance=distance).status_code == 200


def test_similar_to_an_unknown_image_is_404(api: Any) -> None:
    assert_problem(similar(api, 424242), 404)


def test_similar_to_a_private_image_of_another_key_is_404(api: Any, private: Any, keys: Any) -> None:
    assert_problem(similar(api, private["id"], keys["other"]), 404)
    assert_problem(similar(api, private["id"]), 404)
    assert similar(api, private["id"], keys["owner"]).status_code == 200


def test_similar_images_are_limited_to_what_the_caller_may_see(api: Any, keys: Any) -> None:
    picture = generated(20)
    public = post(api, picture, key=keys["owner"]).json()
    hidden = post(api, picture, "JPEG", key=keys["owner"], visibility="private").json()
    others = post(api, picture, "WEBP", key=keys["other"], visibility="private").json()
    public_answer = [i["id"] for i in similar(api, public["id"], keys["other"]).json()["results"]]
    assert hidden["id"] not in public_answer and others["id"] not in public_answer
    mine = similar(api, public["id"], keys["owner"], visibility="private").json()["results"]
    assert [i["id"] for i in mine] == [hidden["id"]]
    every = similar(api, public["id"], keys["admin"], visibility="private").json()["results"]
    assert sorted(i["id"] for i in every) == sorted([hidden["id"], others["id"]])


# --- similar_to against a brute-force answer ------------------------------------------------------


@st.composite
def hash_sets(draw: st.DrawFn) -> tuple[int, list[int], int]:
    """A query hash, hashes planted at every distance around it plus random ones, and a distance."""
    rng = random.Random(draw(st.integers(0, 2**32)))
    query = rng.getrandbits(64)
    hashes = [rng.getrandbits(64) for _ in range(draw(st.integers(0, 40)))]
    for _ in range(draw(st.integers(0, 40))):
        near = query
        for bit in rng.sample(range(64), draw(st.integers(0, 20))):
            near ^= 1 << bit
        hashes.append(near)
    return query, hashes, draw(st.integers(0, 16))


@pytest.mark.parametrize("way", ["band look-ups", "scan"])
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=hash_sets())
def test_similar_to_is_exactly_the_brute_force_answer(
    case: tuple[int, list[int], int], many: Callable[[int], list[int]], way: str, monkeypatch: Any
) -> None:
    # The test's tables are small: the look-ups are forced, or the scan a small table gets.
    monkeypatch.setattr(selectors, "SCAN_ROWS_PER_PROBE", 0 if way == "band look-ups" else 10**9)
    monkeypatch.setattr(selectors, "_SCAN_CONSIDERED_FROM", 0)
    query, hashes, distance = case
    Image.objects.all().delete()
    ids = many(len(hashes) + 1)
    values = [query, *hashes]
    for pk, value in zip(ids, values, strict=True):
        band0, band1, band2 = hashing.bands(value)
        Image.objects.filter(pk=pk).update(
            phash=hashing.to_signed(value), phash_band0=band0, phash_band1=band1, phash_band2=band2
        )
    origin = Image.objects.get(pk=ids[0])
    found = [(row.distance, row.pk) for row in image_similar(image=origin, distance=distance)]
    expected = sorted(
        (hashing.distance(query, value), pk)
        for pk, value in zip(ids[1:], hashes, strict=True)
        if hashing.distance(query, value) <= distance
    )
    assert found == expected


# --- Exact duplicates -------------------------------------------------------------------------


def test_an_identical_upload_names_the_oldest_and_still_creates(api: Any) -> None:
    raw = encode(generated(30, (200, 150)), "PNG")
    first = post(api, PILImage.open(io.BytesIO(raw))).json()
    assert first["duplicate_of"] is None
    second = post(api, PILImage.open(io.BytesIO(raw)))
    assert second.status_code == 201 and second.json()["duplicate_of"] == first["id"]
    third = post(api, PILImage.open(io.BytesIO(raw))).json()
    assert third["duplicate_of"] == first["id"]  # the oldest, not the latest
    assert api.get(f"/images/{third['id']}").json()["duplicate_of"] == first["id"]
    # Another stored file (another size) is no exact duplicate, however similar.
    resized = post(api, PILImage.open(io.BytesIO(raw)), width="100").json()
    assert resized["duplicate_of"] is None


def test_deleting_the_original_clears_duplicate_of(api: Any) -> None:
    im = generated(31, (120, 90))
    first, second = post(api, im).json(), post(api, im).json()
    assert api.delete(f"/images/{first['id']}").status_code == 204
    assert api.get(f"/images/{second['id']}").json()["duplicate_of"] is None


def test_reuse_answers_200_with_the_existing_image_and_makes_nothing(api: Any) -> None:
    im = generated(32, (160, 120))
    first = post(api, im, title="first").json()
    files = stored_names()
    response = post(api, im, title="second", on_duplicate="reuse")
    assert response.status_code == 200
    assert response.json() == api.get(f"/images/{first['id']}").json()
    assert Image.objects.count() == 1 and stored_names() == files
    # Nothing to reuse: a new image, 201.
    fresh = post(api, generated(33, (160, 120)), on_duplicate="reuse")
    assert fresh.status_code == 201 and fresh.json()["duplicate_of"] is None


def test_on_duplicate_must_be_create_or_reuse(api: Any) -> None:
    assert_problem(post(api, quadrants((20, 10)), on_duplicate="skip"), 400, field="on_duplicate")
    assert Image.objects.count() == 0


def test_duplicates_are_per_owner_never_across_keys(api: Any, keys: Any) -> None:
    im = generated(34, (160, 120))
    mine = post(api, im, key=keys["owner"], visibility="private").json()
    theirs = post(api, im, key=keys["other"], visibility="private")
    assert theirs.status_code == 201 and theirs.json()["duplicate_of"] is None
    reused = post(api, im, key=keys["other"], visibility="private", on_duplicate="reuse")
    assert reused.status_code == 200 and reused.json()["id"] == theirs.json()["id"] != mine["id"]
    # Public copies of the same owner's picture are another stored file: no duplicate of the private one.
    public = post(api, im, key=keys["owner"]).json()
    assert public["duplicate_of"] is None
    again = post(api, im, key=keys["owner"], visibility="private").json()
    assert again["duplicate_of"] == mine["id"]


def test_two_identical_uploads_at_once_with_reuse_make_one_image(transactional_db: None, api: Any) -> None:
    if connection.vendor == "sqlite" and connection.settings_dict["NAME"].startswith("file:memorydb"):
        pytest.skip("threads need a database file they share")
    raw = encode(generated(35, (160, 120)), "PNG")
    statuses: list[int] = []
    barrier = threading.Barrier(2)

    def upload() -> None:
        try:
            barrier.wait()
            statuses.append(post(api, PILImage.open(io.BytesIO(raw)), on_duplicate="reuse").status_code)
        finally:
            connection.close()  # this thread's own connection

    threads = [threading.Thread(target=upload) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [200, 201]
    assert Image.objects.count() == 1


# --- The backfill -----------------------------------------------------------------------------


def test_backfill_gives_older_rows_their_phash(api: Any, posted: Callable[..., dict[str, Any]]) -> None:
    body = posted(generated(40, (200, 150)), fmt="JPEG")
    Image.objects.filter(pk=body["id"]).update(
        phash=None, phash_band0=None, phash_band1=None, phash_band2=None
    )
    assert api.get(f"/images/{body['id']}").json()["phash"] is None
    out = io.StringIO()
    call_command("backfill_placeholders", stdout=out, stderr=io.StringIO())
    assert "1 images given a perceptual hash." in out.getvalue()
    filled = api.get(f"/images/{body['id']}").json()["phash"]
    # From the stored file rather than the pixels before encoding: the same picture, within a bit or two.
    assert hashing.distance(int(filled, 16), int(body["phash"], 16)) <= 2
    assert [i["id"] for i in similar(api, posted(generated(40, (200, 150)))["id"]).json()["results"]] == [
        body["id"]
    ]


def test_similar_to_counts_among_costly_reads_per_address(api: Any, settings: Any) -> None:
    """A search of every hash costs up to a hundred pages: it takes from its own, smaller limit."""
    settings.THROTTLE_COSTLY_READS_PER_ADDRESS = "2/minute"
    original = post(api, generated(3)).json()
    for _ in range(2):
        assert similar(api, original["id"]).status_code == 200
    refused = similar(api, original["id"])
    assert_problem(refused, 429)
    assert int(refused["Retry-After"]) > 0
    # Ordinary reads are not costly ones.
    assert api.get("/images").status_code == 200
    assert api.get(f"/images/{original['id']}").status_code == 200


def test_similar_to_answers_the_same_on_a_connection_threads_share(api: Any) -> None:
    """A shared connection (Django's live server shares an in-memory database's) counts bits without
    calling back into Python; the answer is the same, scan and look-ups alike."""
    original = generated(10)
    base = post(api, original).json()
    for name, change in TRANSFORMATIONS.items():
        post(api, change(original), title=name)
    for seed in range(11, 14):
        post(api, generated(seed), title=f"other {seed}")
    answers = {d: similar(api, base["id"], distance=d).json() for d in (4, 8, 16)}
    assert answers[8]["results"]
    connection.inc_thread_sharing()
    try:
        shared = {d: similar(api, base["id"], distance=d).json() for d in (4, 8, 16)}
    finally:
        connection.dec_thread_sharing()
    assert shared == answers
