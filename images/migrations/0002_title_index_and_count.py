"""Reads at scale: a trigram index for the title filter (PostgreSQL) and an exact O(1) image count.

- PostgreSQL: `pg_trgm` and a GIN index on `title_folded` with `gin_trgm_ops`, which serves the filter's
  `LIKE '%…%'`, and finer statistics on that column for the planner. SQLite has no such index: nothing
  of this is done there (its filter stays a scan).
- Both: the table `images_image_count` (one row, the number of images) and the triggers that keep it
  exact in the same transaction as every insert, delete and truncate. PostgreSQL uses statement-level
  triggers with transition tables, so a bulk insert of 10,000 rows updates the counter once, not 10,000
  times; SQLite has only row-level triggers (cheap there: no row versions).
"""

from django.db import NotSupportedError, migrations, models

TABLE = "images_image"
COUNT_TABLE = "images_image_count"
TRIGRAM_INDEX = "image_title_folded_trgm"

POSTGRESQL_INSTALL = [
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    f"CREATE INDEX {TRIGRAM_INDEX} ON {TABLE} USING gin (title_folded gin_trgm_ops)",
    # The planner estimates how many titles contain a word from a sample of titles; the default sample
    # (100 histogram buckets) misjudges mid-frequency words by 10-50x, and then picks the wrong index.
    f"ALTER TABLE {TABLE} ALTER COLUMN title_folded SET STATISTICS 1000",
    f"""CREATE TABLE {COUNT_TABLE} (
        id smallint PRIMARY KEY CHECK (id = 1),
        total bigint NOT NULL CHECK (total >= 0)
    )""",
    # No insert or delete may slip in between counting the rows and installing the triggers.
    f"LOCK TABLE {TABLE} IN SHARE ROW EXCLUSIVE MODE",
    f"INSERT INTO {COUNT_TABLE} (id, total) SELECT 1, count(*) FROM {TABLE}",
    f"""CREATE FUNCTION images_image_count_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE n bigint;
    BEGIN
        SELECT count(*) INTO n FROM inserted;
        IF n > 0 THEN UPDATE {COUNT_TABLE} SET total = total + n WHERE id = 1; END IF;
        RETURN NULL;
    END $$""",
    f"""CREATE FUNCTION images_image_count_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE n bigint;
    BEGIN
        SELECT count(*) INTO n FROM deleted;
        IF n > 0 THEN UPDATE {COUNT_TABLE} SET total = total - n WHERE id = 1; END IF;
        RETURN NULL;
    END $$""",
    f"""CREATE FUNCTION images_image_count_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        UPDATE {COUNT_TABLE} SET total = 0 WHERE id = 1;
        RETURN NULL;
    END $$""",
    f"""CREATE TRIGGER images_image_count_inserted AFTER INSERT ON {TABLE}
        REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT
        EXECUTE FUNCTION images_image_count_inserted()""",
    f"""CREATE TRIGGER images_image_count_deleted AFTER DELETE ON {TABLE}
        REFERENCING OLD TABLE AS deleted FOR EACH STATEMENT
        EXECUTE FUNCTION images_image_count_deleted()""",
    f"""CREATE TRIGGER images_image_count_truncated AFTER TRUNCATE ON {TABLE}
        FOR EACH STATEMENT EXECUTE FUNCTION images_image_count_truncated()""",
]
POSTGRESQL_UNINSTALL = [
    f"DROP TRIGGER images_image_count_truncated ON {TABLE}",
    f"DROP TRIGGER images_image_count_deleted ON {TABLE}",
    f"DROP TRIGGER images_image_count_inserted ON {TABLE}",
    "DROP FUNCTION images_image_count_truncated()",
    "DROP FUNCTION images_image_count_deleted()",
    "DROP FUNCTION images_image_count_inserted()",
    f"DROP TABLE {COUNT_TABLE}",
    f"DROP INDEX {TRIGRAM_INDEX}",
    f"ALTER TABLE {TABLE} ALTER COLUMN title_folded SET STATISTICS -1",
    # The extension stays: other databases objects may use it, and it costs nothing unused.
]

SQLITE_INSTALL = [
    f"""CREATE TABLE {COUNT_TABLE} (
        id integer PRIMARY KEY CHECK (id = 1),
        total integer NOT NULL CHECK (total >= 0)
    )""",
    f"INSERT INTO {COUNT_TABLE} (id, total) SELECT 1, count(*) FROM {TABLE}",
    # With a trigger on the table, SQLite turns off its truncate optimization: `DELETE FROM images_image`
    # (Django's flush) runs the delete trigger for every row.
    f"""CREATE TRIGGER images_image_count_inserted AFTER INSERT ON {TABLE}
        BEGIN UPDATE {COUNT_TABLE} SET total = total + 1 WHERE id = 1; END""",
    f"""CREATE TRIGGER images_image_count_deleted AFTER DELETE ON {TABLE}
        BEGIN UPDATE {COUNT_TABLE} SET total = total - 1 WHERE id = 1; END""",
]
SQLITE_UNINSTALL = [
    "DROP TRIGGER images_image_count_deleted",
    "DROP TRIGGER images_image_count_inserted",
    f"DROP TABLE {COUNT_TABLE}",
]

STATEMENTS = {
    "postgresql": (POSTGRESQL_INSTALL, POSTGRESQL_UNINSTALL),
    "sqlite": (SQLITE_INSTALL, SQLITE_UNINSTALL),
}


def install(apps, schema_editor):
    _run(schema_editor, install=True)


def uninstall(apps, schema_editor):
    _run(schema_editor, install=False)


def _run(schema_editor, *, install):
    vendor = schema_editor.connection.vendor
    if vendor not in STATEMENTS:
        raise NotSupportedError(f"Imagery supports SQLite and PostgreSQL, not {vendor}")
    for statement in STATEMENTS[vendor][0 if install else 1]:
        schema_editor.execute(statement, params=None)


class Migration(migrations.Migration):

    dependencies = [
        ("images", "0001_initial"),
    ]

    operations = [
        migrations.CreateModel(
            name="ImageCount",
            fields=[
                ("id", models.PositiveSmallIntegerField(default=1, primary_key=True, serialize=False)),
                ("total", models.PositiveBigIntegerField()),
            ],
            options={
                "db_table": "images_image_count",
                "managed": False,
            },
        ),
        migrations.RunPython(install, uninstall),
    ]
