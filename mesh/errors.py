"""Errors the traffic-governance layer shares."""

from __future__ import annotations


class SettingsError(ValueError):
    """Settings of the mesh (``name_resolution``, ``rate_limits``, ``tcp_copy``) are unusable; the
    message names the field. Start-up fails with it in one line."""
