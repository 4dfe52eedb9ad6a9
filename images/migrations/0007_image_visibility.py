"""`visibility` (public or private), and the count of private rows beside the count of all rows.

The column is added in place, like 0006's `version` (a rebuild of the table on SQLite would drop the
counter's triggers of migration 0002): `ADD COLUMN ... NOT NULL DEFAULT 'public'` with its CHECK. The
counter table gets a `private` column, kept exact by triggers of its own in the same transaction as every
insert, delete, truncate and change of visibility, so that the public list's count stays O(1)
(`total - private`): PostgreSQL's are statement-level with transition tables like 0002's, SQLite's
row-level. Existing rows are public, so the new count starts at 0.
"""

from django.db import NotSupportedError, migrations, models

TABLE = "images_image"
COUNT_TABLE = "images_image_count"

ADD_COLUMNS = [
    f"""ALTER TABLE "{TABLE}" ADD COLUMN "visibility" varchar(7) NOT NULL DEFAULT 'public'
        CONSTRAINT "image_visibility_known" CHECK ("visibility" IN ('public', 'private'))""",
    f"ALTER TABLE {COUNT_TABLE} ADD COLUMN private bigint NOT NULL DEFAULT 0 CHECK (private >= 0)",
]
DROP_COLUMNS = [
    f"ALTER TABLE {COUNT_TABLE} DROP COLUMN private",
    f'ALTER TABLE "{TABLE}" DROP COLUMN "visibility"',
]

POSTGRESQL_INSTALL = [
    f"""CREATE FUNCTION images_image_private_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE n bigint;
    BEGIN
        SELECT count(*) INTO n FROM inserted WHERE visibility = 'private';
        IF n > 0 THEN UPDATE {COUNT_TABLE} SET private = private + n WHERE id = 1; END IF;
        RETURN NULL;
    END $$""",
    f"""CREATE FUNCTION images_image_private_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE n bigint;
    BEGIN
        SELECT count(*) INTO n FROM deleted WHERE visibility = 'private';
        IF n > 0 THEN UPDATE {COUNT_TABLE} SET private = private - n WHERE id = 1; END IF;
        RETURN NULL;
    END $$""",
    f"""CREATE FUNCTION images_image_private_updated() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE n bigint;
    BEGIN
        SELECT (SELECT count(*) FROM after_rows WHERE visibility = 'private')
             - (SELECT count(*) FROM before_rows WHERE visibility = 'private') INTO n;
        IF n <> 0 THEN UPDATE {COUNT_TABLE} SET private = private + n WHERE id = 1; END IF;
        RETURN NULL;
    END $$""",
    f"""CREATE FUNCTION images_image_private_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        UPDATE {COUNT_TABLE} SET private = 0 WHERE id = 1;
        RETURN NULL;
    END $$""",
    f"""CREATE TRIGGER images_image_private_inserted AFTER INSERT ON {TABLE}
        REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT
        EXECUTE FUNCTION images_image_private_inserted()""",
    f"""CREATE TRIGGER images_image_private_deleted AFTER DELETE ON {TABLE}
        REFERENCING OLD TABLE AS deleted FOR EACH STATEMENT
        EXECUTE FUNCTION images_image_private_deleted()""",
    # PostgreSQL refuses transition tables on a trigger with a column list (UPDATE OF visibility).
    f"""CREATE TRIGGER images_image_private_updated AFTER UPDATE ON {TABLE}
        REFERENCING OLD TABLE AS before_rows NEW TABLE AS after_rows FOR EACH STATEMENT
        EXECUTE FUNCTION images_image_private_updated()""",
    f"""CREATE TRIGGER images_image_private_truncated AFTER TRUNCATE ON {TABLE}
        FOR EACH STATEMENT EXECUTE FUNCTION images_image_private_truncated()""",
]
POSTGRESQL_UNINSTALL = [
    f"DROP TRIGGER images_image_private_truncated ON {TABLE}",
    f"DROP TRIGGER images_image_private_updated ON {TABLE}",
    f"DROP TRIGGER images_image_private_deleted ON {TABLE}",
    f"DROP TRIGGER images_image_private_inserted ON {TABLE}",
    "DROP FUNCTION images_image_private_truncated()",
    "DROP FUNCTION images_image_private_updated()",
    "DROP FUNCTION images_image_private_deleted()",
    "DROP FUNCTION images_image_private_inserted()",
]

SQLITE_INSTALL = [
    f"""CREATE TRIGGER images_image_private_inserted AFTER INSERT ON {TABLE}
        WHEN NEW.visibility = 'private'
        BEGIN UPDATE {COUNT_TABLE} SET private = private + 1 WHERE id = 1; END""",
    f"""CREATE TRIGGER images_image_private_deleted AFTER DELETE ON {TABLE}
        WHEN OLD.visibility = 'private'
        BEGIN UPDATE {COUNT_TABLE} SET private = private - 1 WHERE id = 1; END""",
    f"""CREATE TRIGGER images_image_private_updated AFTER UPDATE OF visibility ON {TABLE}
        WHEN OLD.visibility IS NOT NEW.visibility
        BEGIN UPDATE {COUNT_TABLE}
            SET private = private + (CASE WHEN NEW.visibility = 'private' THEN 1 ELSE -1 END) WHERE id = 1;
        END""",
]
SQLITE_UNINSTALL = [
    "DROP TRIGGER images_image_private_updated",
    "DROP TRIGGER images_image_private_deleted",
    "DROP TRIGGER images_image_private_inserted",
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
        ("images", "0006_image_version"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunSQL(ADD_COLUMNS, DROP_COLUMNS)],
            state_operations=[
                migrations.AddField(
                    model_name="image",
                    name="visibility",
                    field=models.CharField(
                        choices=[("public", "Public"), ("private", "Private")], default="public", max_length=7
                    ),
                ),
                migrations.AddConstraint(
                    model_name="image",
                    constraint=models.CheckConstraint(
                        condition=models.Q(visibility__in=["public", "private"]), name="image_visibility_known"
                    ),
                ),
            ],
        ),
        migrations.RunPython(install, uninstall),
    ]
