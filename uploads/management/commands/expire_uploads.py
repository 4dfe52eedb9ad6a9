"""`manage.py expire_uploads`: delete the upload URLs that expired without making their image.

Safe while the service is serving; run it periodically (cron, a systemd timer, a Kubernetes CronJob), every
hour or so: an expired URL takes no upload whether or not its row is still there, so this only bounds the
table (and, with resumable uploads, removes their partial data). See uploads.services.expired_uploads_sweep.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from uploads.resumable import tus_partials_sweep
from uploads.services import expired_uploads_sweep


class Command(BaseCommand):
    help = "Delete the upload URLs that expired unused (and their partial uploads). Safe while serving."

    def handle(self, *args: Any, **options: Any) -> None:
        deleted = expired_uploads_sweep()
        self.stdout.write(f"{deleted} expired upload URL(s) deleted.")
        # Then the chunks of resumable uploads no one will read (of the URLs just deleted among them).
        chunks = tus_partials_sweep()
        self.stdout.write(f"{chunks} partial upload chunk(s) deleted.")
