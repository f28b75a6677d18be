"""PixelForge: a self-hosted generative-media API server."""

__version__ = "0.1.0"
