"""Graph-shaped errors (docs/graph-contract.md §7.1).

Handlers raise GraphError; the application turns it into
{"error": {"code", "message", "innerError": {"date", "request-id", "client-request-id"}}}.
"""

from __future__ import annotations


class GraphError(Exception):
    """An error answered with Graph's error body."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        inner_code: str | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}
        self.inner_code = inner_code


def bad_request(message: str, code: str = "badRequest") -> GraphError:
    # DOC-GAP (docs/graph-contract.md §1.2, §1.6, §3): Graph does not document the codes for rule
    # violations on authentication methods; the contract recommends 400 badRequest with a clear
    # message.
    return GraphError(400, code, message)


def not_found(message: str, code: str = "itemNotFound") -> GraphError:
    return GraphError(404, code, message)


def conflict(message: str, code: str = "conflict") -> GraphError:
    return GraphError(409, code, message)


def forbidden(message: str, code: str = "accessDenied") -> GraphError:
    return GraphError(403, code, message)
