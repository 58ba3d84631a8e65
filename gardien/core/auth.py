"""FastAPI dependencies that authenticate API keys and check roles."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from gardien.core.errors import Problem
from gardien.core.roles import Role
from gardien.core.runtime import Runtime
from gardien.core.service import Principal, authenticate

bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer gdn_…`")


def runtime_of(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


class Forbidden(Problem):
    def __init__(self, role: Role) -> None:
        super().__init__(403, "forbidden", "Forbidden", f"the {role.value} role may not do this")


def require(roles: Iterable[Role]) -> Callable[..., Awaitable[Principal]]:
    allowed = frozenset(roles)

    # Async so that the hot ingest path does not hop to a thread; authenticate() is served from
    # memory after the first request of a key.
    async def dependency(
        request: Request,
        credentials: HTTPAuthorizationCredentials | None = Depends(bearer),
    ) -> Principal:
        token = credentials.credentials if credentials is not None else None
        principal = authenticate(runtime_of(request), token)
        if principal.role not in allowed:
            raise Forbidden(principal.role)
        request.state.principal = principal
        return principal

    return dependency
