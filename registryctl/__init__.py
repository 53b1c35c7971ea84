"""``registryctl``: the registry's REST API from a terminal or a script.

Exceptions::

    RegistryctlError          any failure; ``str()`` is the one line printed before exiting with 1
    ├── RegistryUnreachableError   no registry answered (connection refused, DNS, timeout)
    └── RegistryApiError           the registry answered an error (status, code, message)
"""

from registryctl.cli import main
from registryctl.client import RegistryClient
from registryctl.errors import RegistryApiError, RegistryctlError, RegistryUnreachableError

__all__ = ["RegistryApiError", "RegistryClient", "RegistryUnreachableError", "RegistryctlError", "main"]
