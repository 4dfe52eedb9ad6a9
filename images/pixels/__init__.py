"""Pure image work on bytes: decoding, animation, encoding, processing (`render`), limits, placeholders.

Nothing here imports Django, DRF or another app of ours (an import-linter contract in pyproject.toml says
so), so a worker, a script or another project can reuse it as it is. The rest of the app reaches it through
`images.pipeline`, which adds this deployment's settings.
"""
