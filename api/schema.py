"""OpenAPI helpers: the documented error and page shapes; the statuses and headers every operation answers;
security as IMAGERY_AUTH has it; trailing-slash aliases kept out of the schema. What a client generated
from the schema needs (`make client-check` proves it)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from drf_spectacular import openapi
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiResponse, inline_serializer
from rest_framework import serializers

from api.auth import key_required
from api.problems import PROBLEM_CONTENT_TYPE

_DESCRIPTIONS = {
    400: "Invalid request: a field is missing or out of range, or the image does not decode.",
    401: "Missing or invalid credentials.",
    403: "These credentials may not do this.",
    404: "No such resource.",
    413: "The upload has too many bytes or pixels.",
    409: "Refused in the state the resource is in (used already, or in use); nothing was changed.",
    410: "Gone: it expired.",
    411: "`Content-Length` is required.",
    412: "`If-Match` names a version that is no longer current; nothing was changed.",
    415: "Not an image, or not a format we accept.",
    429: "Too many requests; see Retry-After.",
    503: "A service we depend on failed; nothing was changed. See Retry-After.",
    460: "Checksum Mismatch (tus): the body is not what `Upload-Checksum` declared; nothing was kept.",
}


class FieldErrorSerializer(serializers.Serializer):
    field = serializers.CharField(help_text="The request field concerned, e.g. `width`.")
    code = serializers.CharField(help_text="Stable, machine-readable, e.g. `max_value`.")
    message = serializers.CharField()


class ProblemSerializer(serializers.Serializer):
    """RFC 9457 problem details."""

    type = serializers.CharField(default="about:blank")
    title = serializers.CharField(help_text="The HTTP status phrase.")
    status = serializers.IntegerField()
    detail = serializers.CharField(help_text="What went wrong, for a person.")
    code = serializers.CharField(help_text="What went wrong, for a program.")
    errors = FieldErrorSerializer(many=True, required=False)

    class Meta:
        ref_name = "Problem"


def problem_responses(*statuses: int) -> dict[int, OpenApiResponse]:
    """`responses=` entries documenting these error statuses (as problem+json, see below)."""
    return {code: OpenApiResponse(ProblemSerializer, _DESCRIPTIONS[code]) for code in statuses}


def page_of(item: type[serializers.Serializer], *, component_name: str) -> serializers.Serializer:
    """The `200` of a paginated list (`api.pagination.Page.body`) whose items `item` describes."""
    return inline_serializer(
        component_name,
        fields={
            "count": serializers.IntegerField(
                required=False,
                help_text=(
                    "Page-number mode only (absent with `cursor`). The number of matching items: exact, "
                    "unless `count_exact` is present and false; then a lower bound (a filtered list is "
                    f"counted exactly up to {settings.LIST_COUNT_CAP} matches)."
                ),
            ),
            "count_exact": serializers.BooleanField(
                required=False,
                help_text=(
                    "Present, and false, only when `count` is a lower bound. `next` and `previous` are "
                    "exact either way."
                ),
            ),
            "next": serializers.URLField(
                allow_null=True, help_text="The next (older) page; null on the last page."
            ),
            "previous": serializers.URLField(
                allow_null=True, help_text="The previous (newer) page; null on the first page."
            ),
            "results": item(many=True),
        },
    )


def hide_trailing_slash_aliases(endpoints: list[tuple[Any, ...]], **kwargs: Any) -> list:
    """Every path is routed with and without a trailing slash; document each once."""
    paths = {path for path, *_ in endpoints}
    return [e for e in endpoints if not (e[0].endswith("/") and e[0].rstrip("/") in paths)]


def errors_as_problem_json(result: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """Error responses are `application/problem+json`, not the renderer's `application/json`."""
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            for status, response in operation.get("responses", {}).items():
                content = response.get("content", {})
                if int(status) >= 400 and "application/json" in content:
                    response["content"] = {PROBLEM_CONTENT_TYPE: content["application/json"]}
    return result


class AutoSchema(openapi.AutoSchema):
    """drf-spectacular's schema, with each operation's security following IMAGERY_AUTH."""

    def get_auth(self) -> list[dict[str, list[Any]]]:
        auths = super().get_auth()
        if not key_required(self.method):
            # The key is optional here. OpenAPI says so with an extra `{}` requirement, but generated
            # clients read any requirement as mandatory (openapi-python-client 0.29 makes such an
            # operation take only an AuthenticatedClient, its issue #1372): declare none, and the
            # scheme's description says a key is welcome everywhere.
            return []
        return auths


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    """Declares the API key as an HTTP bearer scheme, so Swagger UI's "Authorize" works."""

    target_class = "api.auth.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "An API key from `manage.py apikey create NAME`. "
            "`Authorization: Api-Key <key>` is accepted too. Operations that declare this scheme need a "
            "key; the others take one as well (it owns what it uploads and has its own rate limits).",
        }


# A serializer decorated with `extend_schema_serializer(extensions={CLOSED: True})` refuses fields it does
# not have, and its schema says so; drf-spectacular only passes `x-` keys through, so this hook turns the
# mark into `additionalProperties: false`.
CLOSED = "x-closed"


# Likewise `extensions={MIN_PROPERTIES: n}`: an object of optional fields that needs at least n of them.
MIN_PROPERTIES = "x-min-properties"


def closed_objects(result: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """Postprocessing hook: components marked CLOSED allow no other properties; MIN_PROPERTIES, fewer (and
    a request body of one is required: drf-spectacular makes a body of only optional fields optional)."""
    needing: set[str] = set()
    for name, component in result.get("components", {}).get("schemas", {}).items():
        if component.pop(CLOSED, False):
            component["additionalProperties"] = False
        if (least := component.pop(MIN_PROPERTIES, None)) is not None:
            component["minProperties"] = least
            needing.add(f"#/components/schemas/{name}")
    for path in result.get("paths", {}).values():
        for operation in path.values():
            body = operation.get("requestBody") if isinstance(operation, dict) else None
            if body and any(
                c.get("schema", {}).get("$ref") in needing for c in body.get("content", {}).values()
            ):
                body["required"] = True
    return result


# Every operation can answer these, whatever it declares: a key sent that is not valid (401), a rate limit
# (429: every request counts against the reads or writes per address), a database or file store that
# failed (503).
EVERY_OPERATION = (401, 429, 503)

_RETRY_AFTER = {
    "description": "Seconds to wait before trying again.",
    "schema": {"type": "integer", "minimum": 0},
}
_ETAG = {
    "description": "The version of what is answered: send it back in `If-None-Match` (a 304 while it "
    "is current) or `If-Match` (a change only if nobody changed it since).",
    "schema": {"type": "string"},
}
_LOCATION = {"description": "The URL of what was created.", "schema": {"type": "string"}}


def declare_every_answer(result: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """Postprocessing hook: the statuses and headers every operation answers, declared once here.

    `EVERY_OPERATION` statuses as problems; `Retry-After` on 429 and 503; `Location` on a 201; `ETag` on
    the 2xx of an operation that is conditional (it answers 304, or takes `If-Match`). A client
    generated from the schema then gets these typed instead of raising on an undeclared status.
    """
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            for status in EVERY_OPERATION:
                responses.setdefault(
                    str(status),
                    {
                        "description": _DESCRIPTIONS[status],
                        "content": {
                            PROBLEM_CONTENT_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}
                        },
                    },
                )
            for status in ("429", "503"):
                responses[status].setdefault("headers", {})["Retry-After"] = _RETRY_AFTER
            if "201" in responses:
                responses["201"].setdefault("headers", {})["Location"] = _LOCATION
            takes_if_match = any(p.get("name") == "If-Match" for p in operation.get("parameters", []))
            if "304" in responses or takes_if_match:
                for status, response in responses.items():
                    if status.startswith("2") and "content" in response:
                        response.setdefault("headers", {})["ETag"] = _ETAG
    return result
