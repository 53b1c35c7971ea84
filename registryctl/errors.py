"""The one exception tree of registryctl (see the package docstring)."""

from __future__ import annotations


class RegistryctlError(Exception):
    """Any failure; its text is the single line the command prints."""


class RegistryUnreachableError(RegistryctlError):
    """No registry answered."""


class RegistryApiError(RegistryctlError):
    """The registry answered with an error status."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
