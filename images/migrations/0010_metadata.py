"""`metadata`: the app's own data on an image, a JSON object (images/metadata.py), `{}` by default.

As 0006 and 0007 do, the column is added in place (a rebuild of the table on SQLite would drop the
counter's triggers of migration 0002), `NOT NULL DEFAULT '{}'` with a CHECK that it is an object: jsonb on
PostgreSQL (no rewrite of the table: a constant default), JSON1 text on SQLite. Rows inserted without the
column (seed_images' COPY) get `{}` from the database.

On PostgreSQL a GIN index with `jsonb_path_ops` serves the list's filter (`metadata @> '{"k": "v"}'`,
images/selectors.py), and the column keeps finer statistics for the planner. It is built CONCURRENTLY, so the migration is not atomic: a large table keeps taking
writes while it is built. SQLite has no such index: its filter reads the rows' JSON (README).
"""

from django.db import NotSupportedError, migrations, models

TABLE = "images_image"

POSTGRESQL_INSTALL = [
    f"""ALTER TABLE "{TABLE}" ADD COLUMN "metadata" jsonb NOT NULL DEFAULT '{{}}'::jsonb
        CONSTRAINT "image_metadata_object" CHECK (jsonb_typeof("metadata") = 'object')""",
    f'CREATE INDEX CONCURRENTLY "image_metadata_gin" ON "{TABLE}" USING gin ("metadata" jsonb_path_ops)',
    # Containment has no statistics of its own: the planner applies `@>` to the column's histogram, which
    # at the default target (100 entries) puts every value at about 100 rows in a million. With 1000, a
    # value in one row of a hundred is estimated in thousands, and its first page walks the date index
    # (under a millisecond) instead of sorting all its matches (20 ms at a million rows). title_folded
    # has the same target (0002), so ANALYZE samples no more rows than before.
    f'ALTER TABLE "{TABLE}" ALTER COLUMN "metadata" SET STATISTICS 1000',
]
POSTGRESQL_UNINSTALL = [
    'DROP INDEX CONCURRENTLY IF EXISTS "image_metadata_gin"',
    f'ALTER TABLE "{TABLE}" DROP COLUMN "metadata"',
]
# Dropped in place (SQLite since 3.35, its column CHECK with it).
SQLITE_INSTALL = [
    f"""ALTER TABLE "{TABLE}" ADD COLUMN "metadata" text NOT NULL DEFAULT '{{}}'
        CONSTRAINT "image_metadata_object" CHECK (JSON_VALID("metadata") AND JSON_TYPE("metadata") = 'object')""",
]
SQLITE_UNINSTALL = [f'ALTER TABLE "{TABLE}" DROP COLUMN "metadata"']

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
    # CREATE INDEX CONCURRENTLY cannot run inside a transaction.
    atomic = False

    dependencies = [
        ("images", "0009_phash"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunPython(install, uninstall)],
            state_operations=[
                migrations.AddField(
                    model_name="image",
                    name="metadata",
                    field=models.JSONField(blank=True, default=dict),
                ),
            ],
        ),
    ]
