"""RFC 9457 problem details: the one shape every error takes."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse

PROBLEM_JSON = "application/problem+json"
PROBLEM_BASE = "https://gardien.dev/problems/"


class Problem(Exception):
    """An error the client can act on; rendered as ``application/problem+json``."""

    def __init__(self, status: int, slug: str, title: str, detail: str = "", **extra: Any) -> None:
        super().__init__(detail or title)
        self.status = status
        self.slug = slug
        self.title = title
        self.detail = detail
        self.extra = extra


class NotFound(Problem):
    def __init__(self, what: str) -> None:
        super().__init__(404, "not-found", "Not found", f"{what} does not exist")


class Conflict(Problem):
    def __init__(self, detail: str) -> None:
        super().__init__(409, "conflict", "Conflict", detail)


class TooLarge(Problem):
    def __init__(self, detail: str) -> None:
        super().__init__(413, "too-large", "Payload too large", detail)


class InvalidInput(Problem):
    def __init__(self, detail: str, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(422, "validation", "Invalid input", detail, errors=errors or [])


def problem_response(request: Request, problem: Problem) -> JSONResponse:
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + problem.slug,
        "title": problem.title,
        "status": problem.status,
        "detail": problem.detail,
        "instance": request.url.path,
    }
    body.update(problem.extra)
    headers = {"WWW-Authenticate": "Bearer"} if problem.status == 401 else None
    return JSONResponse(body, status_code=problem.status, media_type=PROBLEM_JSON, headers=headers)


def _field_path(loc: tuple[Any, ...] | list[Any], kind: str = "") -> str:
    # Only the first element says where (body, query…); later ones are member names, and a member
    # may well be called "path" or "body".
    where, parts = (str(loc[0]), list(loc[1:])) if loc else ("body", [])
    if kind == "json_invalid":
        return where  # the second element is a character offset, not a member
    return ".".join(str(p) for p in parts) or where


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return problem_response(request, exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {
                "field": _field_path(e.get("loc", ()), e.get("type", "")),
                "in": (e.get("loc") or ["body"])[0],
                "message": e.get("msg", ""),
                "type": e.get("type", ""),
            }
            for e in exc.errors()
        ]
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5])
        return problem_response(request, InvalidInput(detail, errors))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = str(exc.detail) if isinstance(exc.detail, str) else "HTTP error"
        if exc.status_code == 413:
            return problem_response(request, TooLarge(detail))
        if exc.status_code == 400 and isinstance(exc.__cause__, ValueError):
            # FastAPI's "error parsing the body": JSON it could not turn into values (an integer
            # of thousands of digits, bytes that are not UTF-8). Invalid input like any other.
            message = str(exc.__cause__).split(";")[0]
            error = {"field": "body", "in": "body", "message": message, "type": "json_invalid"}
            return problem_response(request, InvalidInput(f"body: {message}", [error]))
        slug = {404: "not-found", 405: "method-not-allowed", 401: "unauthorized"}.get(exc.status_code, "http-error")
        return problem_response(request, Problem(exc.status_code, slug, detail, detail))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        return problem_response(request, Problem(500, "internal", "Internal error", "an unexpected error occurred"))
