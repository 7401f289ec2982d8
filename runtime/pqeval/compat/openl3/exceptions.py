"""openl3's exception and warning classes, as pqeval errors."""

from __future__ import annotations

from ...errors import UsageError


class OpenL3Error(UsageError):
    """An invalid argument, where openl3 0.4.2 raises ``openl3.OpenL3Error`` (one-line message)."""


class OpenL3Warning(UserWarning):
    """What openl3 0.4.2 warns about (``openl3.openl3_warnings.OpenL3Warning``): padded or silent audio."""
