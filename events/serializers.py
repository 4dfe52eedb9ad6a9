"""The webhook endpoints' serializers: input per operation, and the endpoint and delivery objects."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field, extend_schema_serializer
from rest_framework import serializers

from api.pagination import PageInputSerializer
from events.kinds import EventKind
from events.models import URL_MAX_LENGTH, Delivery, DeliveryStatus, WebhookEndpoint
from events.targets import TargetRefused, check_url


class WebhookUrlField(serializers.CharField):
    """A URL a webhook may be sent to (https; a public host): the checks that need no DNS lookup."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(
            max_length=URL_MAX_LENGTH,
            help_text=(
                "Where events are POSTed: https (http only with WEBHOOK_ALLOW_HTTP), no user info, not an "
                "address that is loopback, private, link-local or otherwise not public (checked again "
                "when each event is sent, after resolving the host)."
            ),
            **kwargs,
        )

    def to_internal_value(self, data: Any) -> str:
        url = super().to_internal_value(data)
        try:
            check_url(url)
        except TargetRefused as exc:
            raise serializers.ValidationError(str(exc), code="refused") from None
        return url


def _kinds_field(**kwargs: Any) -> serializers.ListField:
    return serializers.ListField(
        child=serializers.ChoiceField(choices=EventKind.choices),
        max_length=len(EventKind.choices),
        help_text="The event kinds to send; empty or left out: every kind.",
        **kwargs,
    )


class WebhookCreateInputSerializer(serializers.Serializer):
    url = WebhookUrlField()
    events = _kinds_field(required=False, default=list)
    enabled = serializers.BooleanField(required=False, default=True)


class WebhookUpdateInputSerializer(serializers.Serializer):
    url = WebhookUrlField(required=False)
    events = _kinds_field(required=False)
    enabled = serializers.BooleanField(required=False)


@extend_schema_serializer(component_name="WebhookEndpoint")
class WebhookOutputSerializer(serializers.ModelSerializer):
    events = serializers.ListField(
        child=serializers.ChoiceField(choices=EventKind.choices),
        help_text="The event kinds sent; empty: every kind.",
    )

    class Meta:
        model = WebhookEndpoint
        fields = ["id", "url", "events", "enabled", "created_at"]
        read_only_fields = fields


@extend_schema_serializer(component_name="WebhookEndpointCreated")
class WebhookCreatedSerializer(WebhookOutputSerializer):
    secret = serializers.CharField(
        help_text=(
            "The signing secret (`whsec_…`), answered only now: verify each delivery's `webhook-signature` "
            "with it (the `standardwebhooks` package of PyPI or npm)."
        )
    )

    class Meta(WebhookOutputSerializer.Meta):
        fields = [*WebhookOutputSerializer.Meta.fields, "secret"]
        read_only_fields = fields


@extend_schema_serializer(component_name="WebhookDelivery")
class DeliveryOutputSerializer(serializers.ModelSerializer):
    event_id = serializers.CharField(help_text="The event's id: the `webhook-id` header of every try.")
    event_type = serializers.ChoiceField(source="event.kind", choices=EventKind.choices)
    status = serializers.ChoiceField(
        choices=DeliveryStatus.choices,
        help_text="`pending` (tried again at `next_attempt_at`), `delivered` (a 2xx) or `failed` (gave up).",
    )
    attempts = serializers.IntegerField(help_text="Tries made so far.")
    response_status = serializers.IntegerField(
        allow_null=True, help_text="The HTTP status of the last try's answer; null when none came."
    )
    error = serializers.CharField(help_text="Why the last try failed; empty when it did not.")
    response_body = serializers.CharField(help_text="The first 256 bytes of the last answer, at most.")
    last_attempt_at = serializers.DateTimeField(allow_null=True)
    next_attempt_at = serializers.SerializerMethodField(
        help_text="When the next try is due; null unless `pending`."
    )

    class Meta:
        model = Delivery
        fields = [
            "id",
            "event_id",
            "event_type",
            "status",
            "attempts",
            "response_status",
            "error",
            "response_body",
            "created_at",
            "last_attempt_at",
            "next_attempt_at",
        ]
        read_only_fields = fields

    @extend_schema_field(OpenApiTypes.DATETIME)
    def get_next_attempt_at(self, delivery: Delivery) -> str | None:
        if delivery.status != DeliveryStatus.PENDING:
            return None
        return serializers.DateTimeField().to_representation(delivery.next_attempt_at)


class DeliveryListInputSerializer(PageInputSerializer):
    """`page`/`page_size`, or `cursor`, as for images."""
