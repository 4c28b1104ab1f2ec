"""JSON batching: `POST /{version}/$batch` (docs/graph-contract.md §6).

The batch is parsed and validated as a whole (≤ 20 requests, unique ids, relative URLs, a
Content-Type header with every body, dependsOn naming earlier requests) — any violation is a 400
for the whole batch. Each inner request then runs through the same pipeline as a top-level one
(`Simulator.execute`: routing, the outer token, throttling counted per item, faults). A request
whose dependency failed gets 424. Responses come back in an order that is deliberately not the
request order, as Graph does not guarantee it; clients must match by id.
"""

from __future__ import annotations

import base64
import json
import random
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote

from werkzeug.wrappers import Request

from graphsim.errors import GraphError
from graphsim.http import Principal

if TYPE_CHECKING:
    from graphsim.app import GraphResult, Simulator

MAX_REQUESTS = 20


def _bad(message: str) -> GraphError:
    return GraphError(400, "BadRequest", message)


def _parse(request: Request) -> list[dict[str, Any]]:
    try:
        payload = json.loads(request.get_data() or b"")
    except ValueError as exc:
        raise _bad("Invalid batch payload format.") from exc
    if not isinstance(payload, dict) or not isinstance(payload.get("requests"), list):
        raise _bad("Invalid batch payload format: a 'requests' array is required.")
    items = payload["requests"]
    if not items:
        raise _bad("Invalid batch payload format: the 'requests' array is empty.")
    if len(items) > MAX_REQUESTS:
        raise _bad(f"Number of batch requests exceeds the limit of {MAX_REQUESTS}.")
    seen: set[str] = set()
    for item in items:
        if not isinstance(item, dict):
            raise _bad("Invalid batch payload format: each request must be an object.")
        item_id = item.get("id")
        if not isinstance(item_id, str) or not item_id:
            raise _bad("Invalid batch payload format: every request needs a string 'id'.")
        if item_id in seen:
            raise _bad(f"Batch request id '{item_id}' is not unique.")
        if not isinstance(item.get("method"), str) or not isinstance(item.get("url"), str):
            raise _bad(f"Batch request '{item_id}' needs 'method' and 'url'.")
        url = item["url"]
        if "://" in url or url.startswith("//"):
            raise _bad(f"Batch request '{item_id}': the url must be relative, e.g. '/users'.")
        if url.lstrip("/").lower().startswith("$batch"):
            raise _bad("Nested batch requests are not supported.")
        headers = item.get("headers")
        if headers is not None and not isinstance(headers, dict):
            raise _bad(f"Batch request '{item_id}': 'headers' must be an object.")
        if "body" in item and item["body"] is not None:
            names = {k.lower() for k in (headers or {})}
            if "content-type" not in names:
                raise _bad(
                    f"Write request id : {item_id} does not contain Content-Type header or body."
                )
        depends = item.get("dependsOn")
        if depends is not None:
            if not isinstance(depends, list) or not all(isinstance(d, str) for d in depends):
                raise _bad(f"Batch request '{item_id}': 'dependsOn' must be an array of ids.")
            for dependency in depends:
                if dependency not in seen:
                    # Dependencies must name requests that come earlier in the batch.
                    raise _bad(
                        f"Batch request '{item_id}' depends on '{dependency}', which is not an "
                        "earlier request in this batch."
                    )
        seen.add(item_id)
    return items


def _body_bytes(item: dict[str, Any]) -> bytes:
    body = item.get("body")
    if body is None:
        return b""
    content_type = next(
        (v for k, v in (item.get("headers") or {}).items() if k.lower() == "content-type"), ""
    )
    if isinstance(body, str) and "json" not in content_type.lower():
        # Non-JSON bodies travel base64-encoded (concepts/json-batching.md).
        try:
            return base64.b64decode(body, validate=True)
        except ValueError as exc:
            raise _bad(f"Batch request '{item['id']}': body is not valid base64.") from exc
    return json.dumps(body).encode()


def handle(
    sim: Simulator,
    request: Request,
    *,
    principal: Principal,
    version: str,
    base_url: str,
    request_id: str,
    client_request_id: str,
) -> GraphResult:
    from graphsim.app import GRAPH_JSON, GraphResult

    if request.method != "POST":
        return sim._error_result(
            GraphError(405, "Request_BadRequest", "The batch endpoint accepts only POST."),
            request_id,
            client_request_id,
        )
    try:
        items = _parse(request)
    except GraphError as error:
        sim._count_request("POST", 400)
        return sim._error_result(error, request_id, client_request_id)
    with sim.stats.lock:
        sim.stats.batches += 1

    outcomes: dict[str, int] = {}
    responses: list[dict[str, Any]] = []
    lose = False
    for item in items:
        item_id = item["id"]
        failed = [d for d in item.get("dependsOn") or [] if outcomes.get(d, 500) >= 400]
        if failed:
            # DOC-GAP (docs/graph-contract.md §6, docs/graph-examples/INDEX.md): the 424 item body
            # is undocumented; ours is the shape of docs/graph-examples/batch.response.json.
            outcomes[item_id] = 424
            sim._count_request(item["method"], 424)
            responses.append(
                {
                    "id": item_id,
                    "status": 424,
                    "body": {
                        "error": {
                            "code": "FailedDependency",
                            "message": f"Request '{item_id}' failed because it depends on "
                            f"request '{failed[0]}' which failed.",
                        }
                    },
                }
            )
            continue
        path, _, query = item["url"].partition("?")
        # An item's url is percent-encoded like a top-level request's (a guest's UPN holds #EXT#);
        # werkzeug decodes the top-level path, so decode the item's path the same way.
        path = unquote(path)
        headers = {k.lower(): str(v) for k, v in (item.get("headers") or {}).items()}
        inner_request_id = request_id
        result = sim.execute(
            method=item["method"],
            version=version,
            path="/" + path.lstrip("/"),
            query=dict(parse_qsl(query, keep_blank_values=True)),
            headers=headers,
            body=_body_bytes(item),
            principal=principal,
            base_url=base_url,
            request_id=inner_request_id,
            client_request_id=client_request_id,
        )
        lose = lose or result.lose_response
        outcomes[item_id] = result.status
        entry: dict[str, Any] = {"id": item_id, "status": result.status}
        item_headers = dict(result.headers)
        if isinstance(result.body, dict | list):
            item_headers.setdefault("Content-Type", GRAPH_JSON)
            if result.status < 400:
                item_headers.setdefault("OData-Version", "4.0")
        if item_headers:
            entry["headers"] = item_headers
        if result.body is not None:
            body = result.body
            if isinstance(body, bytes):
                body = base64.b64encode(body).decode()
            entry["body"] = body
        responses.append(entry)

    result = GraphResult(200, {"responses": _unordered(responses)}, {})
    result.lose_response = lose
    return result


# DOC-GAP (docs/graph-contract.md §6): transport faults (latency, connection reset) apply once to
# the whole batch, as they would to its HTTP request; throttling and injected 5xx apply per item; a
# lost response on any write item loses the whole batch response (the write is kept).


def _unordered(responses: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A deterministic shuffle that never returns the request order (for two or more items)."""
    if len(responses) < 2:
        return responses
    shuffled = list(responses)
    random.Random(",".join(r["id"] for r in responses)).shuffle(shuffled)
    if [r["id"] for r in shuffled] == [r["id"] for r in responses]:
        shuffled = shuffled[1:] + shuffled[:1]
    return shuffled
