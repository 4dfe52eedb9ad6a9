"""GET /: the gallery page. Everything on it comes from the public API, fetched by gallery.js."""

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


@method_decorator(allow_methods("GET", "HEAD"), name="dispatch")
class GalleryView(TemplateView):
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
        }

    def render_to_response(self, context: dict[str, Any], **kwargs: Any) -> HttpResponse:
        response = super().render_to_response(context, **kwargs)
        response["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        return response
