"""recore-dist: robust contrastive world models (ReCoRe and relatives) trained from pixels on Ray."""

from __future__ import annotations

__version__ = "0.1.0"
