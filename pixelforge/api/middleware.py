"""Moved to pixelforge.web.middleware; kept while the dialect packages land."""

from pixelforge.web.middleware import LimitsMiddleware

__all__ = ["LimitsMiddleware"]
