"""`version`: a number raised with every change of a row, which the object's ETag is made from.

Django would add a NOT NULL column with a default on SQLite by rebuilding the table, which drops the
counter's triggers of migration 0002 (tests/test_image_count.py). SQLite adds such a column in place when
asked directly (`ALTER TABLE ... ADD COLUMN ... NOT NULL DEFAULT 1`, with its CHECK), as PostgreSQL does
(without rewriting the table, since version 11): so the database gets that statement, and Django's state
the field and the constraint it describes. Existing rows start at 1.
"""

from django.db import migrations, models

ADD = (
    'ALTER TABLE "images_image" ADD COLUMN "version" integer NOT NULL DEFAULT 1 '
    'CONSTRAINT "image_version_positive" CHECK ("version" > 0)'
)
# Both drop it in place (SQLite since 3.35, its column CHECK with it).
DROP = 'ALTER TABLE "images_image" DROP COLUMN "version"'


class Migration(migrations.Migration):
    dependencies = [
        ("images", "0005_image_placeholder_color"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunSQL(ADD, DROP)],
            state_operations=[
                migrations.AddField(
                    model_name="image",
                    name="version",
                    field=models.PositiveIntegerField(default=1, editable=False),
                ),
                migrations.AddConstraint(
                    model_name="image",
                    constraint=models.CheckConstraint(
                        condition=models.Q(version__gt=0), name="image_version_positive"
                    ),
                ),
            ],
        ),
    ]
