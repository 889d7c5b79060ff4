"""Actor names as Dapr checks them, and the keys l8 stores under them."""

from __future__ import annotations

import re

from services import errors

RESERVED_PREFIX = "dapr.internal."
"""Dapr's workflow actor types: no user API may touch them."""
SEPARATOR = "||"
_FORBIDDEN = re.compile(r"[/\\#?\x00-\x1f\x7f]")


def check_actor(actor_type: str, actor_id: str) -> None:
    """400 ERR_BAD_REQUEST for an empty name or one holding ``/ \\ # ?`` or a control character;
    403 ERR_ACTOR_TYPE_RESERVED for Dapr's internal types."""
    for what, value in (("actor type", actor_type), ("actor ID", actor_id)):
        if not value:
            raise errors.bad_request(f"{what} is empty")
        if _FORBIDDEN.search(value):
            raise errors.bad_request(f"{what} {value!r} holds a character that is not allowed")
    check_type(actor_type)


def check_type(actor_type: str) -> None:
    """An actor type alone, as :func:`check_actor` checks it."""
    if not actor_type:
        raise errors.bad_request("actor type is empty")
    if _FORBIDDEN.search(actor_type):
        raise errors.bad_request(f"actor type {actor_type!r} holds a character that is not allowed")
    if actor_type.startswith(RESERVED_PREFIX):
        raise errors.actor_type_reserved(actor_type)


def check_name(what: str, name: str) -> None:
    """A reminder's or timer's name: not empty, no control character, no ``||``."""
    if not name or SEPARATOR in name or re.search(r"[\x00-\x1f\x7f]", name):
        raise errors.bad_request(f"{what} name {name!r} is not valid")


def state_key(app_id: str, actor_type: str, actor_id: str, key: str) -> str:
    """Dapr's storage key of an actor's state: ``<appId>||<type>||<id>||<key>``."""
    return SEPARATOR.join((app_id, actor_type, actor_id, key))


def reminder_job(actor_type: str, actor_id: str, name: str) -> str:
    """The scheduler job name of a reminder: ``<type>||<id>||<name>``."""
    return SEPARATOR.join((actor_type, actor_id, name))


def reminder_parts(job_name: str) -> tuple[str, str, str] | None:
    """(type, id, reminder) of a job name; an id may itself hold ``||``."""
    parts = job_name.split(SEPARATOR)
    if len(parts) < 3:
        return None
    found = parts[0], SEPARATOR.join(parts[1:-1]), parts[-1]
    return found if all(found) else None
