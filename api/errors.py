"""Django's own error views (handler400/403/404/500), answering in the same problem+json format.

These cover what happens outside DRF views: unknown URLs, the file view, and uncaught exceptions.
"""

from django.http import HttpRequest, JsonResponse

from api.problems import problem_response


def bad_request(request: HttpRequest, exception: Exception) -> JsonResponse:
    return problem_response(400, "The request was malformed.")


def permission_denied(request: HttpRequest, exception: Exception) -> JsonResponse:
    return problem_response(403, "You may not do this.")


def page_not_found(request: HttpRequest, exception: Exception) -> JsonResponse:
    return problem_response(404, "Nothing is at this address.", code="not_found")


def server_error(request: HttpRequest) -> JsonResponse:
    return problem_response(500, "Something went wrong on our side; it has been logged.")
