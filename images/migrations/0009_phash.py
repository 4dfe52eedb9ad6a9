"""The perceptual hash (`phash`, a signed bigint) and its three bands for `similar_to`, each indexed with
the hash and the id (multi-index hashing, read from the index alone: images/selectors.py `image_similar`);
`duplicate_of`, set at upload (indexed, as a foreign key's column is, for the delete that clears it); an
index on `file` for an upload's exact duplicates.

Nullable columns without a default: SQLite adds them in place (a rebuild of the table would drop the
counter's triggers of migration 0002) and PostgreSQL without rewriting the table. Older rows keep NULL
until `manage.py backfill_placeholders` fills `phash`.
"""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('images', '0008_focal'),
        ('rest_framework_api_key', '0005_auto_20220110_1102'),
    ]

    operations = [
        migrations.AddField(
            model_name='image',
            name='duplicate_of',
            field=models.ForeignKey(blank=True, db_constraint=False, editable=False, null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to='images.image'),
        ),
        migrations.AddField(
            model_name='image',
            name='phash',
            field=models.BigIntegerField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='image',
            name='phash_band0',
            field=models.IntegerField(blank=True, editable=False, null=True),
        ),
        migrations.AddField(
            model_name='image',
            name='phash_band1',
            field=models.IntegerField(blank=True, editable=False, null=True),
        ),
        migrations.AddField(
            model_name='image',
            name='phash_band2',
            field=models.IntegerField(blank=True, editable=False, null=True),
        ),
        migrations.AddIndex(
            model_name='image',
            index=models.Index(fields=['file'], name='image_file'),
        ),
        migrations.AddIndex(
            model_name='image',
            index=models.Index(fields=['phash_band0', 'phash', 'id'], name='image_phash_band0'),
        ),
        migrations.AddIndex(
            model_name='image',
            index=models.Index(fields=['phash_band1', 'phash', 'id'], name='image_phash_band1'),
        ),
        migrations.AddIndex(
            model_name='image',
            index=models.Index(fields=['phash_band2', 'phash', 'id'], name='image_phash_band2'),
        ),
    ]
