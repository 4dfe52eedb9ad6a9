"""Merges the crops branch's 0008_focal and the phash branch's 0008_phash (made in the gallery branch, which
needs both to run its browser tests): nothing to do. The lead may renumber one 0008 instead and drop this."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("images", "0008_focal"),
        ("images", "0008_phash"),
    ]

    operations: list = []
