"""Errors the traffic-governance layer shares, and the settings error l8 shares with it."""

from __future__ import annotations


class SettingsError(ValueError):
    """l8's settings are unusable: the settings file, or a setting of the mesh (``name_resolution``,
    ``rate_limits``, ``tcp_copy``); the message names the file or the field. Start-up fails with it
    in one line. It lives here, the lowest floor that raises it; app/settings.py raises it too."""


class PlacementUnavailable(ConnectionError):
    """Placement could not read the members of an actor type from its store (Redis or etcd away):
    who hosts the actor is unknown, which is not the same as "no sidecar hosts it"."""
