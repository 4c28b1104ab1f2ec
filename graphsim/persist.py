"""Saving the simulated tenant to a JSON file and loading it back (`python -m graphsim serve`).

This is the simulated cloud's own storage, not Lanyard's: it keeps what Entra keeps, including
the QR PINs Entra needs to verify sign-ins. Writes are debounced so a burst of Graph writes costs
one file write, and the file is replaced atomically so a crash never leaves half a tenant.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import os
import threading
import types
import typing
from datetime import datetime
from pathlib import Path
from typing import Any

from graphsim.model import Tenant

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
_SKIP = {"lock", "_index", "_index_size", "delta_tracker"}  # not tenant data


@functools.cache
def _field_names(kind: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(kind) if f.name not in _SKIP)


@functools.cache
def _hints(kind: type) -> dict[str, Any]:
    hints = typing.get_type_hints(kind)
    return {name: hints[name] for name in _field_names(kind)}


def _to_plain(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if hasattr(type(value), "__dataclass_fields__"):
        return {name: _to_plain(getattr(value, name)) for name in _field_names(type(value))}
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, set | frozenset):
        return sorted(_to_plain(v) for v in value)
    if isinstance(value, dict):
        return {k: _to_plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_to_plain(v) for v in value]
    return value


def _from_plain(kind: Any, data: Any) -> Any:
    """Rebuild a value of the annotated type `kind` from its JSON form."""
    if data is None:
        return None
    origin = typing.get_origin(kind)
    args = typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        non_none = [a for a in args if a is not type(None)]
        return _from_plain(non_none[0], data)
    if origin is dict:
        return {k: _from_plain(args[1], v) for k, v in data.items()}
    if origin is list:
        return [_from_plain(args[0], v) for v in data]
    if origin is set:
        return {_from_plain(args[0], v) for v in data}
    if kind is datetime:
        return datetime.fromisoformat(data)
    if dataclasses.is_dataclass(kind):
        values = {
            name: _from_plain(hint, data[name])
            for name, hint in _hints(kind).items()
            if name in data
        }
        return kind(**values)
    return data


def tenant_to_json(tenant: Tenant) -> str:
    with tenant.lock:
        plain = _to_plain(tenant)
    return json.dumps({"format": FORMAT_VERSION, "tenant": plain}, ensure_ascii=False)


def tenant_from_json(text: str) -> Tenant:
    document = json.loads(text)
    if document.get("format") != FORMAT_VERSION:
        raise ValueError(f"unsupported graphsim state format {document.get('format')!r}")
    return _from_plain(Tenant, document["tenant"])


def save(tenant: Tenant, path: str | os.PathLike[str]) -> None:
    """Write atomically: a temporary file in the same directory, then rename over."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_suffix(target.suffix + ".tmp")
    temporary.write_text(tenant_to_json(tenant))
    os.replace(temporary, target)


def load(path: str | os.PathLike[str]) -> Tenant:
    return tenant_from_json(Path(path).read_text())


class DebouncedSaver:
    """Saves the simulator's current tenant at most once per `delay_s` after writes."""

    def __init__(self, get_tenant: typing.Callable[[], Tenant], path: str | os.PathLike[str],
                 delay_s: float = 2.0) -> None:  # fmt: skip
        self.get_tenant = get_tenant
        self.path = Path(path)
        self.delay_s = delay_s
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None

    def schedule(self) -> None:
        with self._lock:
            if self._timer is None:
                self._timer = threading.Timer(self.delay_s, self._fire)
                self._timer.daemon = True
                self._timer.start()

    def _fire(self) -> None:
        with self._lock:
            self._timer = None
        try:
            save(self.get_tenant(), self.path)
        except OSError:
            logger.exception("graphsim: could not save state to %s", self.path)

    def flush(self) -> None:
        """Save now (on shutdown), cancelling a pending timer."""
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
        save(self.get_tenant(), self.path)
