"""The image count the database keeps (migration 0002), and the trigram index behind the title filter."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection, transaction

from images import storage
from images.models import Image
from images.selectors import image_count, image_list

postgresql_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="the trigram index and statement triggers are PostgreSQL's"
)


def assert_count_exact() -> None:
    assert image_count() == Image.objects.count()


def test_image_count_starts_at_zero(db: None) -> None:
    assert image_count() == 0


def test_image_count_follows_uploads(create: Callable[..., Any]) -> None:
    for i in range(3):
        create(title=f"image {i}")
    assert image_count() == 3
    assert_count_exact()


def test_image_count_follows_bulk_inserts_and_deletes(many: Callable[[int], list[int]]) -> None:
    ids = many(25)
    assert image_count() == 25
    Image.objects.filter(pk__in=ids[:10]).delete()  # one DELETE for many rows
    assert_count_exact()
    Image.objects.get(pk=ids[10]).delete()  # one row
    assert image_count() == 14
    assert_count_exact()


def test_image_count_follows_raw_sql(many: Callable[[int], list[int]]) -> None:
    ids = many(4)
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM images_image WHERE id = %s", [ids[0]])
    assert image_count() == 3
    assert_count_exact()


def test_image_count_ignores_rolled_back_writes(many: Callable[[int], list[int]]) -> None:
    many(5)
    with pytest.raises(RuntimeError), transaction.atomic():
        Image.objects.all().delete()
        assert image_count() == 0  # inside the transaction, the count moves with the rows
        raise RuntimeError("roll back")
    assert image_count() == 5
    assert_count_exact()


@postgresql_only
def test_image_count_follows_truncate(many: Callable[[int], list[int]]) -> None:
    (first,) = many(1)
    name = Image.objects.get(pk=first).file.name
    with connection.cursor() as cursor:
        # The test's transaction holds deferred foreign-key checks, which TRUNCATE will not run over.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute("TRUNCATE images_image CASCADE")
    assert image_count() == 0
    storage.delete(name)  # no row points at it any more


@postgresql_only
def test_image_count_follows_copy(many: Callable[[int], list[int]]) -> None:
    (first,) = many(1)
    image = Image.objects.get(pk=first)
    columns = "title, title_folded, file, width, height, format, size, created_at"
    with (
        connection.cursor() as cursor,
        cursor.cursor.copy(f"COPY images_image ({columns}) FROM STDIN") as copy,
    ):
        for i in range(3):
            copy.write_row((f"c {i}", f"c {i}", image.file.name, 1, 1, "png", 1, image.created_at))
    assert image_count() == 4
    assert_count_exact()


# --- the trigram index ------------------------------------------------------------------------------


@postgresql_only
def test_title_filter_can_use_the_trigram_index(many: Callable[[int], list[int]]) -> None:
    many(3)
    # On three rows a scan is cheaper; without scans the planner shows whether the index serves the query.
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off; SET LOCAL enable_indexscan = off")
        for query in (image_list(title="image 1"), image_list(title="Ü%_x")):
            plan = query[:20].explain()
            assert "image_title_folded_trgm" in plan, plan


@postgresql_only
def test_trigram_index_is_gin_trgm_ops_on_title_folded(db: None) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexdef FROM pg_indexes WHERE indexname = 'image_title_folded_trgm'")
        (definition,) = cursor.fetchone()
    assert "USING gin (title_folded gin_trgm_ops)" in definition


@pytest.mark.skipif(connection.vendor != "sqlite", reason="the SQLite side of migration 0002")
def test_sqlite_has_no_trigram_index(db: None) -> None:
    with connection.cursor() as cursor:
        indexes = connection.introspection.get_constraints(cursor, Image._meta.db_table)
    assert "image_title_folded_trgm" not in indexes
