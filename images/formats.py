"""The words of the pixel work that the rest of the app speaks: how a rendition fits its box (`Fit`) and
the formats a file is written in (`OutputFormat`), and which part a crop keeps (`Gravity`).

Only names, no work: models, serializers and views need them to validate and describe a request, and
must not reach the pipeline for that. With `images.pipeline` it is the one way into `images.pixels` (the
`pyproject.toml` import contract "only the pipeline reaches the pixels" checks it).
"""

from images.pixels.processing import Fit, Gravity, OutputFormat

__all__ = ["Fit", "Gravity", "OutputFormat"]
