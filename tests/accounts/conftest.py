"""What the account command tests share (`run` is in tests/conftest.py)."""

from __future__ import annotations

from tests.conftest import Invoke

__all__ = ["GOOD", "OTHER", "Invoke"]

GOOD = "correct horse battery staple"
OTHER = "a different long passphrase"
