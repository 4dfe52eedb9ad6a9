"""What a rendition's first render costs: estimated from the row before it runs, measured after.

The render budgets (api/throttling.py, `THROTTLE_RENDER_*`) are charged the estimate before the work and
corrected to the measure after it. The estimate needs no storage call: output pixels weighted by format
(PNG costs most, then AVIF and WebP, JPEG least), plus the pixels decoded (a JPEG decodes at a reduced
DCT scale). The measure is the CPU time of the request's thread and the bytes it stored. AVIF's encoder
runs threads of its own, outside that measure, so an AVIF render is charged at least its estimate.
"""

from __future__ import annotations

import time

from api.throttling import RenderCost
from images.formats import OutputFormat

# CPU seconds per output megapixel to encode, measured on the 2-core bench machine (AVIF at speed 8, PNG
# at zlib level 6, photo-like content); bench/render_budget.py prints estimates against measures again.
ENCODE_SECONDS_PER_MEGAPIXEL = {
    OutputFormat.JPEG: 0.09,
    OutputFormat.WEBP: 0.17,
    OutputFormat.AVIF: 0.25,
    OutputFormat.PNG: 0.45,
    OutputFormat.GIF: 0.10,
}
# Decoding and resampling, per megapixel decoded; and a JPEG's entropy decoding, which no DCT scale
# reduces, per megapixel of the stored file.
DECODE_SECONDS_PER_MEGAPIXEL = 0.03
JPEG_ENTROPY_SECONDS_PER_MEGAPIXEL = 0.003
# Bytes stored per output pixel, about the most a photo takes in each format.
BYTES_PER_PIXEL = {
    OutputFormat.JPEG: 0.4,
    OutputFormat.WEBP: 0.3,
    OutputFormat.AVIF: 0.3,
    OutputFormat.PNG: 3.0,
    OutputFormat.GIF: 1.0,
}
# The pipeline decodes a JPEG at the smallest DCT scale leaving 1.25 times the output size.
_DCT_MARGIN = 1.25


def estimate(
    *, source_size: tuple[int, int], source_format: str, output_size: tuple[int, int], output: OutputFormat
) -> RenderCost:
    """The cost of rendering a stored image of `source_size` to `output_size` in `output`, from the row."""
    sw, sh = source_size
    ow, oh = output_size
    decoded = sw * sh
    cpu = 0.0
    if source_format == OutputFormat.JPEG.value:
        cpu += JPEG_ENTROPY_SECONDS_PER_MEGAPIXEL * sw * sh / 1e6
        reduction = 1
        while (
            reduction < 8
            and sw / (reduction * 2) >= _DCT_MARGIN * ow
            and sh / (reduction * 2) >= _DCT_MARGIN * oh
        ):
            reduction *= 2
        decoded //= reduction * reduction
    cpu += DECODE_SECONDS_PER_MEGAPIXEL * decoded / 1e6
    cpu += ENCODE_SECONDS_PER_MEGAPIXEL[output] * ow * oh / 1e6
    return RenderCost(cpu_seconds=cpu, stored_bytes=round(BYTES_PER_PIXEL[output] * ow * oh))


def measured(
    *, estimated: RenderCost, output: OutputFormat, cpu_seconds: float, stored_bytes: int, rendered: bool
) -> RenderCost:
    """What to charge after the work: the thread's CPU time and the bytes stored (AVIF: at least the
    estimated CPU, when it rendered, since its encoder's threads are not in the thread's time)."""
    if rendered and output is OutputFormat.AVIF:
        cpu_seconds = max(cpu_seconds, estimated.cpu_seconds)
    return RenderCost(cpu_seconds=cpu_seconds, stored_bytes=stored_bytes)


def thread_cpu() -> float:
    """CPU seconds this thread has run (a test may replace it with a clock of its own)."""
    return time.thread_time()
