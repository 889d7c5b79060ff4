"""What makes a sidecar refuse to start."""

from __future__ import annotations


class StartupError(Exception):
    """Start-up cannot go on; the message is one line naming the file, component and field."""
