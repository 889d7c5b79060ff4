"""Domain errors raised by components. They carry no HTTP knowledge: app/errors.py maps them to
Dapr's error codes and statuses, per operation."""

from __future__ import annotations


class ComponentError(Exception):
    """Base of every error a component raises."""


class MetadataError(ComponentError):
    """A component's metadata is missing a required field or has a value of the wrong form."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"metadata field {field!r}: {message}")
        self.field = field
        self.message = message


class ComponentInitError(ComponentError):
    """A component could not start (its server is unreachable, a file cannot be opened...)."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class BackendError(ComponentError):
    """The backing server or file failed during an operation (connection lost, disk full...)."""


class OutcomeUnknownError(BackendError):
    """The operation reached the backend but its answer did not come back (a timeout, or the
    connection lost while waiting): it may or may not have been applied, so a write is not resent
    blindly."""


class NotFoundError(ComponentError):
    """The store answered that the item asked for does not exist (a secret, a file): an answer,
    never retried and never counted against the store by a circuit breaker."""


class StateError(ComponentError):
    """A state operation was refused by the store for a reason other than its backend failing."""


class ETagMismatchError(StateError):
    """The request's ETag differs from the stored one, or first-write found an existing key."""

    def __init__(self, detail: str = "") -> None:
        super().__init__(f"possible etag mismatch. error from state store: {detail or 'etag mismatch'}")


class ETagInvalidError(StateError):
    """The request's ETag cannot be one this store produces (e.g. not a number for Redis)."""

    def __init__(self, etag: str) -> None:
        super().__init__(f"invalid etag value: {etag!r}")


class InvalidStateRequestError(StateError):
    """An option or metadata value the store does not accept (unknown concurrency, bad TTL...)."""


class QueryError(StateError):
    """A state query could not be parsed or executed."""


class InvalidConfigurationRequestError(ComponentError):
    """A configuration key, group or label the store's layout cannot hold (the caller's to fix)."""


class FileError(ComponentError):
    """A file operation refused for a reason other than the store failing."""


class FileNotFound(FileError):
    """The named file does not exist (or is a directory)."""

    def __init__(self, name: str) -> None:
        super().__init__(f"file {name} does not exist")
        self.name = name


class FileExists(FileError):
    """A create-only put found a file of that name (Dapr's binary store without ``overwrite``)."""

    def __init__(self, name: str) -> None:
        super().__init__(f"file {name} already exists")
        self.name = name


class InvalidFileNameError(FileError):
    """A name that would leave the store's root, or that the store cannot hold."""


class RangeNotSatisfiableError(FileError):
    """The asked range starts at or past the end of the file."""

    def __init__(self, size: int) -> None:
        super().__init__(f"the range is not satisfiable: the file has {size} bytes")
        self.size = size
