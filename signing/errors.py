"""Typed errors raised by the :mod:`signing` package.

Every error the package raises on purpose derives from :class:`SigningError`, so a caller can
catch the whole family with one ``except`` and still tell the cases apart.
"""

from __future__ import annotations

__all__ = [
    "FontNotFound",
    "PKIError",
    "RenderError",
    "SignatureFailed",
    "SigningError",
    "TimestampError",
]


class SigningError(Exception):
    """Base class of every error raised by :mod:`signing`."""


class FontNotFound(SigningError):
    """A configured font file is missing; the message names the Debian package that provides it."""


class RenderError(SigningError):
    """The agreement or evidence data cannot be rendered (e.g. the layout does not fit)."""


class PKIError(SigningError):
    """The platform PKI cannot be created or loaded (wrong master secret, damaged files, ...)."""


class TimestampError(SigningError):
    """No timestamp could be obtained, not even from the local fallback authority."""


class SignatureFailed(SigningError):
    """pyHanko refused to sign the document (bad input PDF, unknown party, ...)."""
