"""HTTP endpoints for webhooks (admin keys only): parse, call one service or selector, serialize."""

from __future__ import annotations

from django.http import Http404
from django.urls import reverse
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.generics import GenericAPIView
from rest_framework.parsers import JSONParser
from rest_framework.request import Request
from rest_framework.response import Response

from api.pagination import cursor_page, cursor_position, numbered_page, page_offset
from api.params import one_value_each
from api.schema import page_of, problem_responses
from events.deliveries import delivery_retry
from events.models import Delivery, WebhookEndpoint
from events.permissions import AdminKeyOnly
from events.selectors import delivery_get, delivery_list, endpoint_get, endpoint_list
from events.serializers import (
    DeliveryListInputSerializer,
    DeliveryOutputSerializer,
    WebhookCreatedSerializer,
    WebhookCreateInputSerializer,
    WebhookOutputSerializer,
    WebhookUpdateInputSerializer,
)
from events.services import endpoint_create, endpoint_delete, endpoint_update

_ADMIN = "Admin API keys only (401 without a key, 403 with another key)."


def _endpoint(endpoint_id: int) -> WebhookEndpoint:
    try:
        return endpoint_get(endpoint_id=endpoint_id)
    except WebhookEndpoint.DoesNotExist:
        raise Http404("No webhook endpoint has this id.") from None


class WebhookCollectionApi(GenericAPIView):
    permission_classes = [AdminKeyOnly]
    parser_classes = [JSONParser]
    serializer_class = WebhookOutputSerializer

    @extend_schema(
        operation_id="webhooks_list",
        summary="List webhook endpoints",
        description=f"Newest first, without their secrets. {_ADMIN}",
        responses={200: WebhookOutputSerializer(many=True), **problem_responses(401, 403, 429)},
    )
    def get(self, request: Request) -> Response:
        return Response(self.get_serializer(endpoint_list(), many=True).data)

    @extend_schema(
        operation_id="webhooks_create",
        summary="Add a webhook endpoint",
        description=(
            "Events are POSTed to `url` as JSON, signed per Standard Webhooks with the endpoint's own "
            f"secret, which this answer carries and no other will. {_ADMIN}"
        ),
        request=WebhookCreateInputSerializer,
        responses={201: WebhookCreatedSerializer, **problem_responses(400, 401, 403, 429)},
    )
    def post(self, request: Request) -> Response:
        params = WebhookCreateInputSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        endpoint = endpoint_create(**params.validated_data)
        return Response(
            WebhookCreatedSerializer(endpoint).data,
            status=status.HTTP_201_CREATED,
            headers={"Location": reverse("webhook-detail", kwargs={"endpoint_id": endpoint.pk})},
        )


class WebhookDetailApi(GenericAPIView):
    permission_classes = [AdminKeyOnly]
    parser_classes = [JSONParser]
    serializer_class = WebhookOutputSerializer

    @extend_schema(
        operation_id="webhooks_retrieve",
        summary="Get a webhook endpoint",
        description=_ADMIN,
        responses={200: WebhookOutputSerializer, **problem_responses(401, 403, 404, 429)},
    )
    def get(self, request: Request, endpoint_id: int) -> Response:
        return Response(self.get_serializer(_endpoint(endpoint_id)).data)

    @extend_schema(
        operation_id="webhooks_update",
        summary="Change a webhook endpoint",
        description=f"Change its `url`, `events` or `enabled`; the secret stays. {_ADMIN}",
        request=WebhookUpdateInputSerializer,
        responses={200: WebhookOutputSerializer, **problem_responses(400, 401, 403, 404, 429)},
    )
    def patch(self, request: Request, endpoint_id: int) -> Response:
        endpoint = _endpoint(endpoint_id)
        params = WebhookUpdateInputSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        endpoint = endpoint_update(endpoint=endpoint, **params.validated_data)
        return Response(self.get_serializer(endpoint).data)

    @extend_schema(
        operation_id="webhooks_destroy",
        summary="Delete a webhook endpoint",
        description=f"With its deliveries: pending ones are not sent. {_ADMIN}",
        responses={204: OpenApiResponse(description="Deleted."), **problem_responses(401, 403, 404, 429)},
    )
    def delete(self, request: Request, endpoint_id: int) -> Response:
        endpoint_delete(endpoint=_endpoint(endpoint_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class WebhookDeliveriesApi(GenericAPIView):
    permission_classes = [AdminKeyOnly]
    serializer_class = DeliveryOutputSerializer

    @extend_schema(
        operation_id="webhooks_deliveries_list",
        summary="List an endpoint's deliveries",
        description=(
            "Newest first: each event sent to this endpoint, its status, tries, and the last try's "
            f"answer. Paginated as `GET /images` is. {_ADMIN}"
        ),
        parameters=[DeliveryListInputSerializer],
        responses={
            200: page_of(DeliveryOutputSerializer, component_name="PaginatedWebhookDeliveryList"),
            **problem_responses(400, 401, 403, 404, 429),
        },
    )
    def get(self, request: Request, endpoint_id: int) -> Response:
        endpoint = _endpoint(endpoint_id)
        params = DeliveryListInputSerializer(
            data=one_value_each(request.query_params, DeliveryListInputSerializer)
        )
        params.is_valid(raise_exception=True)
        size = params.validated_data["page_size"]
        rows = delivery_list(endpoint_id=endpoint.pk)
        if "cursor" in params.validated_data:
            position = cursor_position(params.validated_data["cursor"])
            page = cursor_page(request, rows, position=position, size=size)
        else:
            number = params.validated_data["page"]
            start = page_offset(number, size)
            found = list(rows[start : start + size + 1])
            page = numbered_page(request, found, number=number, size=size, count=rows.count(), exact=True)
        return Response(page.body(self.get_serializer(page.rows, many=True).data))


class WebhookDeliveryRetryApi(GenericAPIView):
    permission_classes = [AdminKeyOnly]
    serializer_class = DeliveryOutputSerializer

    @extend_schema(
        operation_id="webhooks_deliveries_retry",
        summary="Send a delivery again now",
        description=(
            "Queues one more try now, whatever the delivery's status (a delivered one is sent again, "
            f"with the same `webhook-id`). {_ADMIN}"
        ),
        request=None,
        responses={202: DeliveryOutputSerializer, **problem_responses(401, 403, 404, 429)},
    )
    def post(self, request: Request, endpoint_id: int, delivery_id: int) -> Response:
        try:
            delivery = delivery_get(endpoint_id=endpoint_id, delivery_id=delivery_id)
        except Delivery.DoesNotExist:
            raise Http404("This endpoint has no delivery with this id.") from None
        delivery = delivery_retry(delivery=delivery)
        return Response(self.get_serializer(delivery).data, status=status.HTTP_202_ACCEPTED)
