"""The placeholder (ThumbHash, base64) and dominant colour of each image, null until computed.

Both columns are nullable without a default, so on SQLite each is an `ALTER TABLE ... ADD COLUMN`: the
table is not rebuilt and the counter's triggers of migration 0002 stay (tests/test_image_count.py). Rows
stored before this migration are filled by `manage.py backfill_placeholders`.
"""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("images", "0004_drop_image_count_model"),
    ]

    operations = [
        migrations.AddField(
            model_name="image",
            name="placeholder",
            field=models.CharField(blank=True, max_length=64, null=True),
        ),
        migrations.AddField(
            model_name="image",
            name="color",
            field=models.CharField(blank=True, max_length=7, null=True),
        ),
    ]
