"""Every use of Pillow's private names, in one place.

Pillow offers no public way to do these two things; each is one line here, and tests/test_compat.py fails
loudly when an upgrade changes what it relies on. (django-storages' one private name is in images/compat.py.)
"""

from __future__ import annotations

from PIL import Image
from PIL.PngImagePlugin import Blend


def decode_animated_webp_with_alpha(im: Image.Image) -> None:
    """Make Pillow decode an animated WebP's canvas as RGBA, which it reads as RGB when the header says
    no frame has alpha. Its WebP decoder takes the mode from these two attributes (Pillow 13)."""
    im.rawmode = "RGBA"  # type: ignore[attr-defined]
    im._mode = "RGBA"


def load_apng_frame_unblended(im: Image.Image) -> None:
    """Load the current APNG frame as its own pixels, without Pillow blending it onto the canvas.

    Pillow's PNG loader reads the frame's blend operation from `blend_op` when it loads; "source" makes it
    paste the frame's pixels as they are, so that they can be composited correctly by the caller.
    """
    im.blend_op = Blend.OP_SOURCE  # type: ignore[attr-defined]
    im.load()
