"""Reads: every query the API makes for images, and the batches of rows the maintenance commands walk."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.db import connection
from django.db.models import (
    BooleanField,
    CharField,
    Count,
    F,
    FloatField,
    Func,
    IntegerField,
    Q,
    QuerySet,
    Value,
    Window,
)
from django.db.models.expressions import RawSQL
from django.db.models.lookups import Exact, GreaterThan, In

from api.pagination import MAX_BIGINT
from images import pipeline
from images.metadata import Scalar, filter_values
from images.models import Image, Visibility
from images.titles import fold
from images.visibility import may_see

if TYPE_CHECKING:
    from rest_framework_api_key.models import APIKey

# The columns the API answers with: a list or detail read loads nothing else (a field used but missing
# here costs a query per row, which the query-count tests catch).
ANSWERED_FIELDS = (
    "id",
    "title",
    "file",
    "width",
    "height",
    "format",
    "size",
    "created_at",
    "placeholder",
    "color",
    "version",
    "visibility",
    "phash",
    "duplicate_of",  # its id
    "metadata",
    "api_key",  # its id: whose private image it is
    "focal_x",
    "focal_y",
)


def image_list(
    *,
    title: str | None = None,
    metadata: dict[str, str] | None = None,
    visibility: str = Visibility.PUBLIC,
    owner_id: str | None = None,
) -> QuerySet[Image]:
    """Newest first, id as the tie-break (a total order, so pages never repeat or skip a row).

    `title` keeps the images whose title contains it, ignoring case (Unicode-aware on every database).
    `metadata` (key -> a query string's value, keys valid) keeps the images whose metadata has every key
    with a value the text matches (`images.metadata.filter_values`: the string, or an equal number or
    boolean).
    `visibility`: the public images, or the private ones; of those, with `owner_id`, only the ones that API
    key uploaded (None: every one, for an admin key).
    """
    images = Image.objects.only(*ANSWERED_FIELDS).order_by("-created_at", "-id")
    images = images.filter(visibility=visibility)
    if visibility == Visibility.PRIVATE and owner_id is not None:
        images = images.filter(api_key_id=owner_id)
    if title:
        images = images.filter(title_folded__contains=fold(title))
    if metadata:
        images = images.filter(metadata_matches(metadata))
    return images


def metadata_matches(filters: dict[str, str]) -> Q:
    """Rows whose metadata matches every filter (key -> query-string text), as each database can ask.

    PostgreSQL: containment, `metadata @> '{"k": "v"}'`, which its GIN index (jsonb_path_ops, migration
    0008) answers; the keys with one possible value go in one object, the others as an OR of one each.
    SQLite has no containment on JSON (Django refuses `contains` there): each key's JSON type and value
    through JSON1, types compared too, since JSON_EXTRACT gives `true` as 1 and would match the number 1.
    """
    candidates = {key: filter_values(text) for key, text in filters.items()}
    if connection.vendor == "postgresql":
        single = {key: values[0] for key, values in candidates.items() if len(values) == 1}
        condition = Q(metadata__contains=single) if single else Q()
        for key, values in candidates.items():
            if len(values) > 1:
                either = Q()
                for value in values:
                    either |= Q(metadata__contains={key: value})
                condition &= either
        return condition
    condition = Q()
    for values in candidates.values():
        if len(values) == 1 and isinstance(values[0], str):
            # A string, first looked for in the row's JSON text as Django wrote it (json.dumps, ASCII
            # escapes, as every write of the column does): a fraction of the cost of parsing each row's
            # JSON (about 2 ms a query instead of 5 to 15 at 10,000 rows), and only rows holding it are
            # parsed. SQLite tests the terms in this order.
            found = Func(
                F("metadata"), Value(json.dumps(values[0])), function="INSTR", output_field=IntegerField()
            )
            condition &= Q(GreaterThan(found, 0))
    for key, values in candidates.items():
        either = Q()
        for value in values:
            either |= _sqlite_equals(key, value)
        condition &= either
    return condition


def _sqlite_equals(key: str, value: Scalar) -> Q:
    # The key's characters (images.metadata.KEY_PATTERN) need no escaping inside the quoted path step.
    path = Value(f'$."{key}"')
    kind = Func(F("metadata"), path, function="JSON_TYPE", output_field=CharField())
    if isinstance(value, bool):
        return Q(Exact(kind, Value("true" if value else "false")))
    if isinstance(value, str):
        text = Func(F("metadata"), path, function="JSON_EXTRACT", output_field=CharField())
        return Q(Exact(kind, Value("text"))) & Q(Exact(text, Value(value)))
    number = Func(F("metadata"), path, function="JSON_EXTRACT", output_field=FloatField())
    return Q(In(kind, ["integer", "real"])) & Q(Exact(number, Value(float(value))))


def image_count(*, visibility: str | None = None) -> int:
    """How many images there are (of a `visibility`, or all): exact and O(1), from the counter the
    database's triggers keep (migrations 0002 and 0007: every row, and the private ones).

    `images_image_count` holds one row. Triggers (migration 0002) update it in the transaction of every
    INSERT, DELETE and TRUNCATE on the image table, whatever issued it (image_create, bulk_create, a
    queryset delete, psql), so it never drifts from COUNT(*). On SQLite, a migration that Django implements
    by rebuilding the image table (most field changes) drops the triggers with the old table; such a
    migration must create them again (the SQL is in migration 0002), and tests/test_image_count.py fails
    on SQLite until it does.
    """
    # Every list page asks; plain SQL costs a fifth of the ORM's query building.
    with connection.cursor() as cursor:
        cursor.execute("SELECT total, private FROM images_image_count WHERE id = 1")
        total, private = cursor.fetchone()
    if visibility is None:
        return total
    return private if visibility == Visibility.PRIVATE else total - private


@dataclass(frozen=True)
class ImagePage:
    """A slice of `image_list(title=...)` and how many images the whole list holds."""

    items: list[Image]
    count: int
    exact: bool  # False: `count` is a lower bound


def image_list_page(
    *,
    title: str | None = None,
    metadata: dict[str, str] | None = None,
    visibility: str = Visibility.PUBLIC,
    owner_id: str | None = None,
    start: int,
    stop: int,
    count_cap: int,
) -> ImagePage:
    """`image_list(title=..., metadata=..., visibility=..., owner_id=...)[start:stop]`, and its count.

    The count: without `title` or `metadata` (and for one owner's private images), exact and O(1)
    (`image_count`).
    Otherwise counted exactly up to `count_cap`, and past it `count_cap` as a lower bound, since an exact
    count of a common word's matches reads them all. A slice past an exact count is empty without a query.
    """
    images = image_list(title=title, metadata=metadata, visibility=visibility, owner_id=owner_id)
    title = title or None
    filtered = bool(title) or bool(metadata)
    narrowed = filtered or (visibility == Visibility.PRIVATE and owner_id is not None)
    if not narrowed:
        count, exact = image_count(visibility=visibility), True
    else:
        # COUNT over a LIMITed subquery: the database stops after count_cap + 1 matches. (QuerySet.count()
        # on the slice writes the same SQL, with twice the Python work.)
        sql, params = images.order_by().values("pk")[: count_cap + 1].query.sql_with_params()
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT count(*) FROM ({sql}) matches", params)  # noqa: S608 (Django's SQL)
            counted = cursor.fetchone()[0]
        count, exact = min(counted, count_cap), counted <= count_cap
    if exact and start >= count:
        return ImagePage([], count, exact)
    if filtered and exact and connection.vendor == "postgresql":
        # Few matches: plan the page by them (see below), found through the trigram or the GIN index.
        images = images.order_by(*_NEWEST_FIRST_WITHOUT_INDEX)
    return ImagePage(list(images[start:stop]), count, exact)


# Newest first, id as the tie-break, sorted by an expression the (created_at, id) index cannot supply.
# On PostgreSQL a filtered page can be read two ways: walk the (created_at, id) index newest first and
# test every title until the page is full (cheap when many titles match), or collect the matches through
# the trigram index and sort them (cheap when few do). The planner guesses from sampled statistics, and
# for a word that is rare but happened to be sampled it walks: 50 ms instead of 1 at a million rows.
# An exact filtered count means few matches (at most the cap), so then the sort key is one the index
# cannot supply, which leaves only the trigram index or, for needles it cannot serve (under three
# characters), a scan. With many matches the planner's statistics are good and its choice stands.
_NEWEST_FIRST_WITHOUT_INDEX = ((F("created_at") + dt.timedelta(0)).desc(), F("id").desc())


# The largest `distance` that `similar_to` takes: beyond it, unrelated pictures start to match (two random
# 64-bit hashes are within 16 bits about once in 2 * 10^4) and the band look-ups grow past a scan's cost.
MAX_SIMILAR_DISTANCE = 16
# A band value looked up in its index costs about as much as reading five rows' hashes in a scan (bench:
# 3 µs against 0.6 µs on PostgreSQL): with fewer rows than this many per probed value, `image_similar`
# scans instead (at D = 8, 718 values: under about 3,600 rows; at D = 16, under about 350,000).
SCAN_ROWS_PER_PROBE = 5
_SCAN_CONSIDERED_FROM = 2000


def image_similar_page(
    *,
    image: Image,
    distance: int,
    title: str | None = None,
    metadata: dict[str, str] | None = None,
    visibility: str = Visibility.PUBLIC,
    owner_id: str | None = None,
    start: int,
    stop: int,
) -> ImagePage:
    """The images whose perceptual hash is within `distance` bits of `image`'s (itself left out), nearest
    first, id as the tie-break: `[start:stop]` of them and how many there are. Among the images
    `image_list(title, metadata, visibility, owner_id)` shows: the caller's scope. An image without a hash
    (yet) has no similar images.

    Exact: multi-index hashing. The 64 bits are stored as three indexed bands (images.models.Image); a
    hash within `distance` has at least one band within a radius of the query's band (`band_radii`), so
    the candidates are the rows whose band is one of those values (a B-tree look-up per value), and the
    exact distance (a popcount of the XOR) sorts them out. One query: the order by distance sorts every
    match anyway, so the count comes with the page (a window over the matches) at no extra cost.
    """
    if image.phash is None:
        return ImagePage([], 0, True)
    images = image_similar(
        image=image,
        distance=distance,
        title=title,
        metadata=metadata,
        visibility=visibility,
        owner_id=owner_id,
    ).annotate(matches=Window(Count("id")))
    rows = list(images[start:stop])
    if not rows:
        # Past the last match (or none): the count is unknown here, and only page 1 can be empty.
        return ImagePage([], start, start == 0)
    return ImagePage(rows, rows[0].matches, True)


def image_similar(
    *,
    image: Image,
    distance: int,
    title: str | None = None,
    metadata: dict[str, str] | None = None,
    visibility: str = Visibility.PUBLIC,
    owner_id: str | None = None,
) -> QuerySet[Image]:
    """`image_similar_page`'s rows, nearest first then by id, each annotated with its `distance`."""
    if not 0 <= distance <= MAX_SIMILAR_DISTANCE:
        raise ValueError(f"distance must be 0 to {MAX_SIMILAR_DISTANCE}")
    images = image_list(title=title, metadata=metadata, visibility=visibility, owner_id=owner_id)
    if image.phash is None:
        return images.none()
    table = connection.ops.quote_name(Image._meta.db_table)
    hamming, uses = _hamming_sql()
    probes = pipeline.hash_probes(image.phash, distance)
    looked_up = sum(map(len, probes))
    # Only worth a query to the counter when the look-ups are many (D >= 10: at D = 8, 718 of them take
    # about a millisecond however small the table).
    if looked_up >= _SCAN_CONSIDERED_FROM and image_count() < SCAN_ROWS_PER_PROBE * looked_up:
        # Fewer rows than the look-ups would cost (a large distance on a small table: D = 16 probes about
        # 70,000 band values): every row's distance instead, the same answer.
        return (
            images.exclude(pk=image.pk)
            .annotate(distance=_hamming(table, image.phash))
            .filter(distance__lte=distance)
            .order_by("distance", "id")
        )
    # One arm per band searched: the rows whose band is one of the probed values and whose whole hash is
    # within `distance`, read from the (band, phash, id) index alone (an index-only scan on PostgreSQL, a
    # covering index on SQLite): no table row is read for the many candidates that are too far.
    arms, params = [], []
    for band, values in enumerate(probes):
        if not values:
            continue  # this band need not be searched at this distance
        if connection.vendor == "postgresql":
            # One array parameter however many values (D = 16 probes about 70,000), as the text of an
            # array literal: psycopg's client-side binding quotes a list value by value, 7 µs each.
            probe, param = "= ANY(%s::integer[])", "{" + ",".join(map(str, values)) + "}"
            # A parallel-restricted condition, true and evaluated once: it keeps the look-ups in the
            # backend itself. PostgreSQL's cost model would hand them to parallel workers, whose start
            # alone costs more than the millisecond they take at D = 8 (36 ms against 2-14 ms on a busy
            # 2-core machine), and this needs no transaction around a SET LOCAL (three round trips).
            probe += " AND pg_backend_pid() > 0"
        else:
            # SQLite: one JSON parameter too (a list of parameters stops at 32,766), through the index.
            probe, param = "IN (SELECT value FROM json_each(%s))", json.dumps(values)
        arms.append(
            f"SELECT candidate.id FROM {table} candidate WHERE candidate.phash_band{band} {probe}"  # noqa: S608
            f" AND {hamming.format(column='candidate.phash')} <= %s"
        )
        params += [param, *[image.phash] * uses, distance]
    union = " UNION ALL ".join(arms)
    if connection.vendor == "postgresql":
        # ARRAY(...) is computed once, first; `id = ANY` then reads the few matches by primary key. (As a
        # join, the planner guesses thousands of matches and scans the table.)
        matched = f"{table}.id = ANY(ARRAY({union}))"
    else:
        matched = f"{table}.id IN ({union})"
    # Our own table and column names in the SQL; the values are parameters.
    probed = Q(RawSQL(matched, params, output_field=BooleanField()))  # noqa: S611
    return (
        images.filter(probed)
        .exclude(pk=image.pk)
        .annotate(distance=_hamming(table, image.phash))
        .filter(distance__lte=distance)
        .order_by("distance", "id")
    )


# The bits set in each hexadecimal digit, for SQLite's popcount below.
_HEX_DIGIT_BITS = {"1": 1, "2": 1, "4": 1, "8": 1, "3": 2, "5": 2, "6": 2, "9": 2, "a": 2, "c": 2}
_HEX_DIGIT_BITS |= {"7": 3, "b": 3, "d": 3, "e": 3, "f": 4}


def _hamming_sql() -> tuple[str, int]:
    """SQL for the number of bits in which `{column}` (a signed 64-bit hash) differs from a parameter, and
    how many times that parameter appears in it."""
    if connection.vendor == "postgresql":
        return "bit_count(({column} # %s)::bit(64))", 1
    if not connection.allow_thread_sharing:
        # SQLite has no popcount: a function of ours, registered on this connection (cheap, idempotent).
        connection.ensure_connection()
        connection.connection.create_function("imagery_hamming", 2, _sqlite_hamming, deterministic=True)
        return "imagery_hamming({column}, %s)", 1
    # A connection several threads share (Django's live server shares an in-memory test database's) must
    # not call back into Python: the function needs the GIL while SQLite holds the connection's mutex, and
    # a thread binding parameters on that connection holds the GIL while it waits for the mutex (`make
    # test` hung so). Built-ins only, then, about 12x slower: the XOR from | & ~, written as 16 hex digits
    # (printf takes it as unsigned), each digit's bits counted by what removing that digit shortens.
    hexed = "printf('%%016x', ({column} | %s) & ~({column} & %s))"
    counted = (f"{bits} * (16 - length(replace({hexed}, '{d}', '')))" for d, bits in _HEX_DIGIT_BITS.items())
    return "(" + " + ".join(counted) + ")", 2 * len(_HEX_DIGIT_BITS)


def _hamming(table: str, phash: int) -> RawSQL:
    """A row's distance from `phash`."""
    sql, uses = _hamming_sql()
    return RawSQL(sql.format(column=f"{table}.phash"), [phash] * uses, output_field=IntegerField())  # noqa: S611


def _sqlite_hamming(a: int | None, b: int | None) -> int | None:
    if a is None or b is None:
        return None
    return ((a ^ b) & 0xFFFF_FFFF_FFFF_FFFF).bit_count()


def image_get(*, image_id: int) -> Image:
    """Raises Image.DoesNotExist for an unknown id."""
    if not 0 < image_id <= MAX_BIGINT:
        # Larger ids cannot exist, and the database would reject them with an error of its own.
        raise Image.DoesNotExist
    return Image.objects.only(*ANSWERED_FIELDS).get(pk=image_id)


def image_duplicate_of(*, name: str, owner_id: str | None) -> Image | None:
    """The oldest image of this owner (an API key's id; None: uploaded without a key) whose stored file is
    `name`, or None. Another owner's images are never considered, private or public."""
    return (
        Image.objects.only(*ANSWERED_FIELDS)
        .filter(file=name, api_key_id=owner_id)
        .order_by("created_at", "id")
        .first()
    )


def image_get_visible(*, image_id: int, key: APIKey | None) -> Image:
    """`image_get`, for the caller with `key`: a private image not theirs (nor an admin's) raises
    Image.DoesNotExist like an unknown id, so that its existence is not revealed."""
    image = image_get(image_id=image_id)
    if not may_see(visibility=image.visibility, owner_id=image.api_key_id, key=key):
        raise Image.DoesNotExist
    return image


@dataclass(frozen=True)
class ImageFile:
    """An image's stored file, as its row describes it: what its renditions are made from."""

    name: str
    width: int
    height: int
    format: str
    visibility: str
    owner_id: str | None  # the API key that uploaded it
    focal_x: float | None = None
    focal_y: float | None = None

    @property
    def focal(self) -> tuple[float, float] | None:
        """The focal point its crops keep, or None."""
        if self.focal_x is None or self.focal_y is None:
            return None
        return (self.focal_x, self.focal_y)


def image_file_get(*, image_id: int) -> ImageFile:
    """Raises Image.DoesNotExist for an unknown id. Every request for an image's bytes asks: plain SQL, a
    fifth of the ORM's query building (a stored rendition's whole answer takes under a millisecond)."""
    if not 0 < image_id <= MAX_BIGINT:
        raise Image.DoesNotExist
    table = connection.ops.quote_name(Image._meta.db_table)
    with connection.cursor() as cursor:
        columns = "file, width, height, format, visibility, api_key_id, focal_x, focal_y"
        cursor.execute(f"SELECT {columns} FROM {table} WHERE id = %s", [image_id])  # noqa: S608
        row = cursor.fetchone()
    if row is None:
        raise Image.DoesNotExist
    return ImageFile(*row)


def image_file_in_use(*, name: str) -> bool:
    """Whether any row uses the stored file `name` (identical uploads share one)."""
    return Image.objects.filter(file=name).exists()


def image_files_in_batches(*, rows: QuerySet[Image], batch: int) -> Iterator[dict[str, list[int]]]:
    """`rows` in id order, `batch` at a time (a short query each, resumable from any row): each batch as
    its stored files' names, each with the ids of its rows there (identical uploads share one file).

    For the commands that work on every stored file once (backfill_placeholders, convert_masters); a row
    changed or added behind the batch being read is met in a later batch, or not at all.
    """
    if batch < 1:
        raise ValueError("batch must be at least 1")
    after = 0
    while True:
        page = list(rows.filter(pk__gt=after).order_by("pk").values_list("pk", "file")[:batch])
        if not page:
            return
        after = page[-1][0]
        by_file: dict[str, list[int]] = {}
        for pk, name in page:
            by_file.setdefault(name, []).append(pk)
        yield by_file
