"""Moved to pixelforge.web.deps; kept while the dialect packages land (removed with them)."""

from pixelforge.web.deps import (
    CurrentAccount,
    PrincipalDep,
    ServicesDep,
    authenticate,
    credential,
    get_services,
)

__all__ = [
    "CurrentAccount",
    "PrincipalDep",
    "ServicesDep",
    "authenticate",
    "credential",
    "get_services",
]
