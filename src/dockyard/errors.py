"""The one error hierarchy. Each class is a meaning; the message carries the context.

The API layer maps ``http_status`` to the response; CLIs print the message and exit non-zero.
"""


class DockyardError(Exception):
    http_status = 500


class NotFound(DockyardError):
    http_status = 404


class AlreadyExists(DockyardError):
    http_status = 409


class InvalidArgument(DockyardError):
    http_status = 400


class Conflict(DockyardError):
    http_status = 409


class Forbidden(DockyardError):
    """Allowed in general, refused for this object (Docker's 403: a pre-defined network)."""

    http_status = 403


class FailedPrecondition(DockyardError):
    http_status = 412


class Unavailable(DockyardError):
    http_status = 503


class NotImplemented(DockyardError):  # noqa: A001 - the name DESIGN.md gives; use as errors.NotImplemented
    http_status = 501


class KernelError(DockyardError):
    """A system call failed: ``KernelError("mount overlay on /x", errno.EINVAL)``."""

    http_status = 500

    def __init__(self, operation: str, err: int) -> None:
        import os

        self.operation = operation
        self.errno = err
        super().__init__(f"{operation}: {os.strerror(err)}")
