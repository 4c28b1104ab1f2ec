"""Serving the simulator with werkzeug in background threads (tests) or in the foreground (CLI)."""

from __future__ import annotations

import logging
import selectors
import ssl
import threading
from collections.abc import Callable
from typing import Any

import werkzeug.serving
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

logger = logging.getLogger(__name__)


_keep_alive = threading.local()


class _SelectorsForKeepAlive:
    """Stands in for the `selectors` module inside werkzeug.serving.

    After each response werkzeug drains whatever the client sent next ("we know that write closes
    every connection, so we can read everything"). On a kept-alive connection that would swallow
    the next request and block. In graphsim's handler threads the drain sees nothing to read;
    every other werkzeug server in the process is unaffected.
    """

    EVENT_READ = selectors.EVENT_READ

    class DefaultSelector(selectors.DefaultSelector):
        def select(self, timeout: float | None = None) -> list:
            if getattr(_keep_alive, "active", False):
                return []
            return super().select(timeout)

    def __getattr__(self, name: str) -> Any:
        return getattr(selectors, name)


werkzeug.serving.selectors = _SelectorsForKeepAlive()  # type: ignore[assignment]


class QuietRequestHandler(WSGIRequestHandler):
    """werkzeug's handler without a log line per request (tests send thousands), and with
    HTTP/1.1 keep-alive.

    werkzeug closes every connection because http.server cannot skip an unread request body
    before the next request line. graphsim's WSGI apps always read the whole body first (see
    `Simulator.wsgi_app`), so keeping connections open is safe, and it matters: without it every
    request pays a TLS handshake and a CA-bundle load in the client (~15-30 ms), and clients that
    reuse connections (as they do against Graph) are not exercised.
    """

    timeout = 60  # idle keep-alive connections end after a minute
    # Headers and body go out in separate writes; with Nagle's algorithm and the client's
    # delayed ACK a kept-alive connection would wait ~40 ms per response.
    disable_nagle_algorithm = True

    def handle(self) -> None:
        _keep_alive.active = True
        super().handle()

    def send_header(self, keyword: str, value: str) -> None:
        if keyword.lower() == "connection" and value.lower() == "close":
            return  # keep the connection unless the client asked to close it
        super().send_header(keyword, value)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        logger.debug("%s %s %s", self.command, self.path, code)

    def log_error(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib signature)
        logger.debug("graphsim connection: " + format, *args)


class ServerThread:
    """A threaded werkzeug server running `app` in a daemon thread until `stop()`."""

    def __init__(
        self,
        app: Callable,
        host: str = "127.0.0.1",
        port: int = 0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.server: BaseWSGIServer = make_server(
            host,
            port,
            app,
            threaded=True,
            request_handler=QuietRequestHandler,
            ssl_context=ssl_context,
        )
        self.host = host
        self.port = self.server.server_port
        self.thread = threading.Thread(
            target=self.server.serve_forever, name=f"graphsim:{self.port}", daemon=True
        )

    def url(self, scheme: str) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}"

    def start(self) -> ServerThread:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)
