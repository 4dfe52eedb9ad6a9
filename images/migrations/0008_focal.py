"""`focal_x`, `focal_y`: the focal point every crop of the image keeps (fractions of its width and height),
both NULL when there is none.

Added in place as 0006 and 0007 add theirs (a rebuild of the table on SQLite would drop the counter's
triggers of migration 0002): nullable columns with their CHECKs, which SQLite and PostgreSQL both add
without rewriting the table. Existing rows have no focal point.
"""

from django.db import migrations, models

TABLE = "images_image"

ADD_COLUMNS = [
    f"""ALTER TABLE "{TABLE}" ADD COLUMN "focal_x" double precision NULL
        CONSTRAINT "image_focal_x_fraction" CHECK ("focal_x" >= 0 AND "focal_x" <= 1)""",
    f"""ALTER TABLE "{TABLE}" ADD COLUMN "focal_y" double precision NULL
        CONSTRAINT "image_focal_y_fraction" CHECK ("focal_y" >= 0 AND "focal_y" <= 1)
        CONSTRAINT "image_focal_both_or_neither" CHECK (
            ("focal_x" IS NULL AND "focal_y" IS NULL) OR ("focal_x" IS NOT NULL AND "focal_y" IS NOT NULL)
        )""",
]
# focal_y first: its CHECK names focal_x, and goes with it.
DROP_COLUMNS = [
    f'ALTER TABLE "{TABLE}" DROP COLUMN "focal_y"',
    f'ALTER TABLE "{TABLE}" DROP COLUMN "focal_x"',
]


class Migration(migrations.Migration):
    dependencies = [
        ("images", "0007_image_visibility"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunSQL(ADD_COLUMNS, DROP_COLUMNS)],
            state_operations=[
                migrations.AddField(
                    model_name="image",
                    name="focal_x",
                    field=models.FloatField(blank=True, null=True),
                ),
                migrations.AddField(
                    model_name="image",
                    name="focal_y",
                    field=models.FloatField(blank=True, null=True),
                ),
                migrations.AddConstraint(
                    model_name="image",
                    constraint=models.CheckConstraint(
                        condition=models.Q(("focal_x__gte", 0), ("focal_x__lte", 1)),
                        name="image_focal_x_fraction",
                    ),
                ),
                migrations.AddConstraint(
                    model_name="image",
                    constraint=models.CheckConstraint(
                        condition=models.Q(("focal_y__gte", 0), ("focal_y__lte", 1)),
                        name="image_focal_y_fraction",
                    ),
                ),
                migrations.AddConstraint(
                    model_name="image",
                    constraint=models.CheckConstraint(
                        condition=models.Q(
                            models.Q(("focal_x__isnull", True), ("focal_y__isnull", True)),
                            models.Q(("focal_x__isnull", False), ("focal_y__isnull", False)),
                            _connector="OR",
                        ),
                        name="image_focal_both_or_neither",
                    ),
                ),
            ],
        ),
    ]
