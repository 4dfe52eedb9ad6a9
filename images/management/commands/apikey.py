"""`manage.py apikey create [--admin]|list|revoke NAME`: the operator's tool for API keys."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from rest_framework_api_key.models import APIKey

from api.models import AdminKey


class Command(BaseCommand):
    help = "Create, list or revoke API keys. A key is shown once, at creation; only its hash is stored."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True)
        create = actions.add_parser("create", help="Create a key and print it (once).")
        create.add_argument("name", help="Who or what the key is for; unique among active keys.")
        create.add_argument(
            "--admin",
            action="store_true",
            help="May delete and edit any image (a plain key: only the images it uploaded).",
        )
        actions.add_parser("list", help="List keys: name, prefix, created, state.")
        revoke = actions.add_parser("revoke", help="Revoke the active key with this name.")
        revoke.add_argument("name")

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        if action == "create":
            self._create(options["name"], admin=options["admin"])
        elif action == "list":
            self._list()
        else:
            self._revoke(options["name"])

    def _create(self, name: str, *, admin: bool) -> None:
        name = name.strip()
        if not name:
            raise CommandError("The name must not be empty.")
        if APIKey.objects.filter(name=name, revoked=False).exists():
            raise CommandError(f"An active key named {name!r} exists; revoke it first.")
        with transaction.atomic():
            api_key, key = APIKey.objects.create_key(name=name)
            if admin:
                AdminKey.objects.create(api_key=api_key)
        kind = "admin key" if admin else "key"
        self.stderr.write(f"Created {kind} {name!r}. Store it now: it cannot be shown again.")
        self.stdout.write(key)

    def _list(self) -> None:
        admins = set(AdminKey.objects.values_list("api_key_id", flat=True))
        for api_key in APIKey.objects.order_by("created"):
            state = "revoked" if api_key.revoked else "expired" if api_key.has_expired else "active"
            created = api_key.created.isoformat(timespec="seconds")
            role = "admin" if api_key.pk in admins else "uploader"
            self.stdout.write(f"{api_key.name}\t{api_key.prefix}\t{created}\t{state}\t{role}")

    def _revoke(self, name: str) -> None:
        revoked = APIKey.objects.filter(name=name, revoked=False).update(revoked=True)
        if not revoked:
            raise CommandError(f"No active key named {name!r}.")
        self.stdout.write(f"Revoked {name!r}.")
