"""OData query options for directory collections, as strict as Graph (docs/graph-contract.md §4.1,
§4.2).

`query_collection()` applies `$filter`, `$search`, `$orderby`, `$select`, `$top`, `$count` and
`$skiptoken` paging to a list of objects and enforces Graph's advanced-query rules: `$search`
needs `ConsistencyLevel: eventual`; `ne`, `not`, `endsWith` and `$filter` with `$orderby` need
`ConsistencyLevel: eventual` plus `$count=true`; `$skip` is refused. Because the nextLink carries
the original options, a client that does not resend ConsistencyLevel on the next page fails
exactly as it would against Graph.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from graphsim.errors import GraphError
from graphsim.http import SimRequest

Getter = Callable[[Any, str], Any]  # (object, graph property name) → value; KeyError if unknown


def unsupported(message: str = "Unsupported Query.") -> GraphError:
    return GraphError(400, "Request_UnsupportedQuery", message)


def bad_query(message: str) -> GraphError:
    return GraphError(400, "Request_BadRequest", message)


# -- $filter ---------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<num>-?\d+(?:\.\d+)?)|(?P<punct>[(),])"
    r"|(?P<word>[A-Za-z_][A-Za-z0-9_./]*))"
)


@dataclass
class _Filter:
    predicate: Callable[[Any], bool]
    advanced: bool  # uses ne / not / endsWith


class _Parser:
    """Recursive descent over: or → and → not → comparison | function | (expr)."""

    def __init__(self, text: str, getter: Getter, filterable: frozenset[str], kind: str) -> None:
        self.tokens: list[tuple[str, str]] = []
        position = 0
        text = text.strip()
        while position < len(text):
            found = _TOKEN.match(text, position)
            if not found or found.end() == position:
                raise bad_query(f"Invalid filter clause: syntax error at position {position}.")
            kind_name = found.lastgroup or ""
            self.tokens.append((kind_name, found.group(kind_name)))
            position = found.end()
            while position < len(text) and text[position].isspace():
                position += 1
        self.index = 0
        self.getter = getter
        self.filterable = {name.lower(): name for name in filterable}
        self.kind = kind
        self.advanced = False

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        token = self.peek()
        if token is None:
            raise bad_query("Invalid filter clause: unexpected end of expression.")
        self.index += 1
        return token

    def expect(self, value: str) -> None:
        token = self.take()
        if token[1].lower() != value:
            raise bad_query(f"Invalid filter clause: expected '{value}'.")

    def parse(self) -> Callable[[Any], bool]:
        predicate = self.parse_or()
        if self.peek() is not None:
            raise bad_query("Invalid filter clause: unexpected tokens at the end.")
        return predicate

    def parse_or(self) -> Callable[[Any], bool]:
        parts = [self.parse_and()]
        while (token := self.peek()) and token == ("word", token[1]) and token[1].lower() == "or":
            self.take()
            parts.append(self.parse_and())
        return parts[0] if len(parts) == 1 else (lambda o: any(p(o) for p in parts))

    def parse_and(self) -> Callable[[Any], bool]:
        parts = [self.parse_unary()]
        while (token := self.peek()) and token[0] == "word" and token[1].lower() == "and":
            self.take()
            parts.append(self.parse_unary())
        return parts[0] if len(parts) == 1 else (lambda o: all(p(o) for p in parts))

    def parse_unary(self) -> Callable[[Any], bool]:
        token = self.peek()
        if token and token[0] == "word" and token[1].lower() == "not":
            self.take()
            self.advanced = True
            inner = self.parse_unary()
            return lambda o: not inner(o)
        if token and token[1] == "(":
            self.take()
            inner = self.parse_or()
            self.expect(")")
            return inner
        return self.parse_term()

    def prop(self, name: str) -> str:
        canonical = self.filterable.get(name.lower())
        if canonical is None:
            raise unsupported(
                f"Unsupported or invalid query filter clause specified for property '{name}' of "
                f"resource '{self.kind}'."
            )
        return canonical

    def literal(self) -> Any:
        kind, value = self.take()
        if kind == "str":
            return value[1:-1].replace("''", "'")
        if kind == "num":
            return float(value) if "." in value else int(value)
        if kind == "word" and value.lower() in ("true", "false"):
            return value.lower() == "true"
        if kind == "word" and value.lower() == "null":
            return None
        raise bad_query(f"Invalid filter clause: '{value}' is not a literal.")

    def parse_term(self) -> Callable[[Any], bool]:
        kind, word = self.take()
        if kind != "word":
            raise bad_query(f"Invalid filter clause near '{word}'.")
        lowered = word.lower()
        if lowered in ("startswith", "endswith") and self.peek() == ("punct", "("):
            self.take()
            prop = self.prop(self.take()[1])
            self.expect(",")
            needle = self.literal()
            self.expect(")")
            if not isinstance(needle, str):
                raise bad_query(f"{word} needs a string argument.")
            if lowered == "endswith":
                self.advanced = True
            getter, fn = self.getter, lowered
            return lambda o: _str_op(getter(o, prop), needle, fn)
        prop = self.prop(word)
        op_kind, op = self.take()
        op = op.lower()
        getter = self.getter
        if op == "in":
            self.expect("(")
            values = [self.literal()]
            while self.peek() == ("punct", ","):
                self.take()
                values.append(self.literal())
            self.expect(")")
            return lambda o: any(_equal(getter(o, prop), v) for v in values)
        if op in ("eq", "ne"):
            value = self.literal()
            if op == "ne":
                self.advanced = True
                return lambda o: not _equal(getter(o, prop), value)
            return lambda o: _equal(getter(o, prop), value)
        if op in ("ge", "le", "gt", "lt"):
            # Graph allows ranges only on a few properties, as advanced queries.
            self.advanced = True
            value = self.literal()
            return lambda o: _compare(getter(o, prop), value, op)
        raise bad_query(f"Invalid filter clause: unsupported operator '{op}'.")


def _equal(actual: Any, expected: Any) -> bool:
    # Directory string comparisons are case-insensitive (userPrincipalName, mail, ...).
    if isinstance(actual, str) and isinstance(expected, str):
        return actual.lower() == expected.lower()
    return actual == expected


def _compare(actual: Any, expected: Any, op: str) -> bool:
    if actual is None:
        return False
    try:
        return {
            "ge": actual >= expected,
            "le": actual <= expected,
            "gt": actual > expected,
            "lt": actual < expected,
        }[op]
    except TypeError:
        return False


def _str_op(actual: Any, needle: str, fn: str) -> bool:
    if not isinstance(actual, str):
        return False
    if fn == "startswith":
        return actual.lower().startswith(needle.lower())
    return actual.lower().endswith(needle.lower())


def parse_filter(text: str, getter: Getter, filterable: frozenset[str], kind: str) -> _Filter:
    parser = _Parser(text, getter, filterable, kind)
    predicate = parser.parse()
    return _Filter(predicate, parser.advanced)


# -- $search ---------------------------------------------------------------------------------

_SEARCH_CLAUSE = re.compile(r'"(?P<prop>[A-Za-z]+):(?P<value>[^"]*)"')


def parse_search(text: str, getter: Getter, searchable: frozenset[str]) -> Callable[[Any], bool]:
    """`"displayName:Pr"` clauses joined by AND / OR; each matches a word prefix (tokenised)."""
    text = text.strip()
    pieces = re.split(r"\s+(AND|OR)\s+", text)
    clauses, joiners = pieces[::2], pieces[1::2]
    matchers: list[Callable[[Any], bool]] = []
    lookup = {name.lower(): name for name in searchable}
    for clause in clauses:
        found = _SEARCH_CLAUSE.fullmatch(clause.strip())
        if not found:
            raise bad_query(
                'Syntax error: the $search value must be a quoted "property:value" clause.'
            )
        prop = lookup.get(found.group("prop").lower())
        if prop is None:
            raise unsupported(f"Unsupported $search property '{found.group('prop')}'.")
        needle = found.group("value").lower()

        def matcher(o: Any, prop: str = prop, needle: str = needle) -> bool:
            value = getter(o, prop)
            if not isinstance(value, str):
                return False
            words = re.split(r"[\s._@\-]+", value.lower())
            return value.lower().startswith(needle) or any(w.startswith(needle) for w in words)

        matchers.append(matcher)

    def predicate(o: Any) -> bool:
        result = matchers[0](o)
        for joiner, matcher in zip(joiners, matchers[1:], strict=True):
            result = (result and matcher(o)) if joiner == "AND" else (result or matcher(o))
        return result

    return predicate


# -- paging ----------------------------------------------------------------------------------


def _fingerprint(req: SimRequest) -> str:
    options = [f"{k}={v}" for k, v in sorted(req.query.items()) if k.lower() != "$skiptoken"]
    digest = hashlib.sha256(f"{req.path}?{'&'.join(options)}".encode()).hexdigest()
    return digest[:12]


def make_skiptoken(req: SimRequest, offset: int) -> str:
    raw = f"graphsim:{offset}:{_fingerprint(req)}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def read_skiptoken(req: SimRequest, token: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        prefix, offset, fingerprint = raw.split(":")
        if prefix != "graphsim" or fingerprint != _fingerprint(req):
            raise ValueError(raw)
        return int(offset)
    except (ValueError, UnicodeDecodeError) as exc:
        raise bad_query("The specified page token value has expired or is invalid.") from exc


def next_link(req: SimRequest, offset: int) -> str:
    """The absolute nextLink: same path, the original options, a new `$skiptoken`."""
    options = {k: v for k, v in req.query.items() if k.lower() != "$skiptoken"}
    options["$skiptoken"] = make_skiptoken(req, offset)
    query = urlencode(options, quote_via=quote, safe="$,'():")
    return f"{req.version_url(req.path)}?{query}"


def consistency_eventual(req: SimRequest) -> bool:
    return req.headers.get("consistencylevel", "").strip().lower() == "eventual"


def count_requested(req: SimRequest) -> bool:
    value = req.query.get("$count")
    if value is None:
        return False
    if value.lower() not in ("true", "false"):
        raise bad_query(f"Invalid value '{value}' for $count: expected true or false.")
    return value.lower() == "true"


def parse_select(req: SimRequest, known: frozenset[str], kind: str) -> list[str] | None:
    """The `$select` property names in Graph's spelling, or None when absent."""
    raw = req.query.get("$select")
    if raw is None:
        return None
    lookup = {name.lower(): name for name in known}
    selected: list[str] = []
    for part in raw.split(","):
        name = part.strip()
        if not name:
            continue
        canonical = lookup.get(name.lower())
        if canonical is None:
            raise bad_query(f"Could not find a property named '{name}' on type '{kind}'.")
        if canonical not in selected:
            selected.append(canonical)
    return selected


@dataclass
class CollectionSpec:
    """How a directory collection can be queried."""

    kind: str  # e.g. "microsoft.graph.user" (for messages)
    getter: Getter
    filterable: frozenset[str]
    searchable: frozenset[str] = frozenset({"displayName"})
    orderable: frozenset[str] = frozenset({"displayName"})
    # Group member casts: ConsistencyLevel + $count required whatever the options
    # (docs/graph-contract.md §4.5).
    always_advanced: bool = False
    pageable: bool = True


def query_collection(
    req: SimRequest,
    items: list[Any],
    spec: CollectionSpec,
    *,
    context: str,
    serialize: Callable[[Any, list[str] | None], dict[str, Any]],
    known_select: frozenset[str],
) -> dict[str, Any]:
    """Apply the OData options to `items` and build one page of Graph's collection response."""
    options = {k.lower(): k for k in req.query}
    if "$skip" in options:
        raise bad_query("'$skip' is not supported by the service.")
    if "$expand" in options and consistency_eventual(req):
        raise unsupported("$expand is not supported with advanced queries.")
    eventual = consistency_eventual(req)
    counted = count_requested(req)
    # DOC-GAP (docs/graph-contract.md §4.1 lists "$count" among the advanced options): graphsim
    # refuses $count=true without ConsistencyLevel: eventual on every directory collection, as Graph
    # does.
    if counted and not eventual:
        raise unsupported("$count is only supported with the header 'ConsistencyLevel: eventual'.")
    advanced = spec.always_advanced
    predicate: Callable[[Any], bool] | None = None
    if "$filter" in req.query:
        parsed = parse_filter(req.query["$filter"], spec.getter, spec.filterable, spec.kind)
        predicate, advanced = parsed.predicate, advanced or parsed.advanced
    search = None
    if "$search" in req.query:
        # docs/graph-contract.md §4.1: $search needs the ConsistencyLevel header ("header
        # required"); unlike ne/not/endsWith it does not also need $count=true.
        if not eventual:
            raise unsupported(
                "Request with $search query parameter only works through MSGraph with a special "
                "request header: 'ConsistencyLevel: eventual'"
            )
        search = parse_search(req.query["$search"], spec.getter, spec.searchable)
    order_key = None
    descending = False
    if "$orderby" in req.query:
        field_name, _, direction = req.query["$orderby"].strip().partition(" ")
        lookup = {name.lower(): name for name in spec.orderable}
        canonical = lookup.get(field_name.lower())
        if canonical is None or direction.strip().lower() not in ("", "asc", "desc"):
            raise unsupported(f"Sorting not supported for '{req.query['$orderby']}'.")
        descending = direction.strip().lower() == "desc"
        if predicate is not None:
            advanced = True  # $filter together with $orderby (docs/graph-contract.md §4.1)
        getter = spec.getter

        def order_key(o: Any, name: str = canonical) -> tuple[bool, str]:
            value = getter(o, name)
            return (value is None, str(value or "").lower())

    if advanced and not (eventual and counted):
        raise unsupported(
            "Unsupported Query. This query requires the header 'ConsistencyLevel: eventual' and "
            "'$count=true'."
        )
    select = parse_select(req, known_select, spec.kind)

    selected = [o for o in items if (predicate is None or predicate(o))]
    if search is not None:
        selected = [o for o in selected if search(o)]
    if order_key is not None:
        selected.sort(key=order_key, reverse=descending)

    top_raw = req.query.get("$top")
    page_size: int | None = None
    if top_raw is not None:
        if not top_raw.isdigit() or not 1 <= int(top_raw) <= 999:
            raise bad_query(
                f"Invalid page size specified: '{top_raw}'. Must be between 1 and 999 inclusive."
            )
        page_size = int(top_raw)
    config = _config_of(req)
    page_size = page_size or config.default_page_size
    page_size = max(1, min(page_size, config.max_page_size))

    token = req.query.get("$skiptoken")
    offset = read_skiptoken(req, token) if token else 0
    page = selected[offset : offset + page_size] if spec.pageable else selected

    body: dict[str, Any] = {"@odata.context": _context_url(req, context, select)}
    if counted and not token:
        body["@odata.count"] = len(selected)
    if spec.pageable and offset + page_size < len(selected):
        body["@odata.nextLink"] = next_link(req, offset + page_size)
    body["value"] = [serialize(o, select) for o in page]
    return body


def _context_url(req: SimRequest, context: str, select: list[str] | None) -> str:
    suffix = f"({','.join(select)})" if select else ""
    return f"{req.base_url}/{req.api_version}/$metadata#{context}{suffix}"


def context_url(req: SimRequest, context: str) -> str:
    return f"{req.base_url}/{req.api_version}/$metadata#{context}"


def _config_of(req: SimRequest) -> Any:
    if req.config is not None:
        return req.config
    from graphsim.faults import SimConfig

    return SimConfig()
