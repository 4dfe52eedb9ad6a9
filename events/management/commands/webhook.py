"""`manage.py webhook add URL [--events ...]|list|remove ID`: the operator's tool for webhook endpoints."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from events.kinds import EventKind
from events.models import WebhookEndpoint
from events.selectors import endpoint_get, endpoint_list
from events.services import endpoint_create, endpoint_delete
from events.targets import TargetRefused


class Command(BaseCommand):
    help = "Add, list or remove webhook endpoints. A secret is shown once, when its endpoint is added."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True)
        add = actions.add_parser("add", help="Add an endpoint; print its id and secret (once).")
        add.add_argument("url")
        add.add_argument(
            "--events",
            nargs="*",
            default=[],
            choices=EventKind.values,
            metavar="KIND",
            help=f"Event kinds to send (default: all): {', '.join(EventKind.values)}.",
        )
        add.add_argument("--disabled", action="store_true", help="Add it switched off.")
        actions.add_parser("list", help="List endpoints: id, state, events, URL.")
        remove = actions.add_parser("remove", help="Remove an endpoint and its deliveries.")
        remove.add_argument("id", type=int)

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        if action == "add":
            try:
                endpoint = endpoint_create(
                    url=options["url"], events=options["events"], enabled=not options["disabled"]
                )
            except TargetRefused as exc:
                raise CommandError(str(exc)) from None
            self.stderr.write(f"Added endpoint {endpoint.pk}. Store its secret now: it is not shown again.")
            self.stdout.write(f"{endpoint.pk}\t{endpoint.secret}")
        elif action == "list":
            for endpoint in endpoint_list():
                state = "enabled" if endpoint.enabled else "disabled"
                kinds = ",".join(endpoint.events) or "all"
                self.stdout.write(f"{endpoint.pk}\t{state}\t{kinds}\t{endpoint.url}")
        else:
            try:
                endpoint = endpoint_get(endpoint_id=options["id"])
            except WebhookEndpoint.DoesNotExist:
                raise CommandError(f"No endpoint has id {options['id']}.") from None
            endpoint_delete(endpoint=endpoint)
            self.stderr.write(f"Removed endpoint {options['id']}.")
