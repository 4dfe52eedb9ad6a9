"""The gallery's pages. Everything on them comes from the public API, fetched by their scripts.

- `/`: the gallery (gallery.js): upload, search, browse, one image.
- `/upload-link`: make a one-time upload URL with a key and get the link to hand to someone (upload-link.js).
- `/u#<upload URL>`: the page that link opens: pick a file and upload it, with no key (direct-upload.js).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpResponse
from django.utils.decorators import method_decorator
from django.views.generic import TemplateView

from api.problems import allow_methods
from images.formats import Fit

# What each `fit` does, in the words of the upload form.
FIT_LABELS = {
    Fit.CONTAIN: "Contain (fit inside the box)",
    Fit.COVER: "Cover (fill the box, crop)",
    Fit.FILL: "Fill (stretch to the box)",
}

# POST /uploads (one-time upload URLs, the `uploads` app). A path, not a reversed name: the gallery only
# speaks the public API, whose paths are its contract.
UPLOADS_URL = "/uploads"

# Images per page of the grid: divides evenly into rows of 2, 3, 4 or 6 columns.
PAGE_SIZE = 24

# No inline script or style, and nothing from another origin except images: stored files may be served by
# another host (S3, a CDN). `blob:` is the preview of the file chosen for upload, `data:` the tiles'
# placeholders (a ThumbHash decoded to a tiny PNG in the page).
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "img-src * blob: data:",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "form-action 'self'",
        "base-uri 'none'",
        "object-src 'none'",
        "frame-ancestors 'none'",
    ]
)


class _Page(TemplateView):
    """A page of the gallery: GET and HEAD only, under the Content-Security-Policy above."""

    def render_to_response(self, context: dict[str, Any], **kwargs: Any) -> HttpResponse:
        response = super().render_to_response(context, **kwargs)
        response["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        return response


@method_decorator(allow_methods("GET", "HEAD"), name="dispatch")
class GalleryView(_Page):
    template_name = "gallery/index.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        return {
            **super().get_context_data(**kwargs),
            "page_size": PAGE_SIZE,
            "max_upload_bytes": settings.IMAGE_MAX_UPLOAD_BYTES,
            "max_dimension": settings.IMAGE_MAX_DIMENSION,
            "fits": [(fit.value, FIT_LABELS[fit]) for fit in Fit],
            # Private images need owners, so API keys: with access open the switches are not shown.
            "private_images": settings.IMAGERY_AUTH != "off",
            "uploads_url": UPLOADS_URL,
        }


# How long a link made on /upload-link stays usable: POST /uploads's `expires_in` (at most 6 hours).
LINK_EXPIRIES = [(600, "10 minutes"), (1800, "30 minutes"), (3600, "1 hour"), (6 * 3600, "6 hours")]


@method_decorator(allow_methods("GET", "HEAD"), name="dispatch")
class UploadLinkView(_Page):
    """Make an upload link: what an app's backend does with its key, done by hand."""

    template_name = "gallery/upload_link.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        return {
            **super().get_context_data(**kwargs),
            "uploads_url": UPLOADS_URL,
            # Only what this server allows (UPLOAD_URL_MAX_TTL); below ten minutes, its own limit.
            "expiries": [choice for choice in LINK_EXPIRIES if choice[0] <= settings.UPLOAD_URL_MAX_TTL]
            or [(settings.UPLOAD_URL_MAX_TTL, f"{settings.UPLOAD_URL_MAX_TTL} seconds")],
            "default_expiry": min(1800, settings.UPLOAD_URL_MAX_TTL),
        }


# The upload URL travels in the fragment (/u#...): browsers never send it to the server, so it stays out of
# access logs and Referer headers.
@method_decorator(allow_methods("GET", "HEAD"), name="dispatch")
class DirectUploadView(_Page):
    """Upload through a link: no key, only the upload URL the link carries."""

    template_name = "gallery/direct_upload.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        return {**super().get_context_data(**kwargs), "max_upload_bytes": settings.IMAGE_MAX_UPLOAD_BYTES}

    def render_to_response(self, context: dict[str, Any], **kwargs: Any) -> HttpResponse:
        response = super().render_to_response(context, **kwargs)
        response["Referrer-Policy"] = "no-referrer"
        return response
