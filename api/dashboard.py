"""`python -m api.dashboard`: rq-dashboard behind a guard that refuses a foreign Host (DNS
rebinding) and a cross-origin POST (docs/security.md, "Dashboard")."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

#: The names a browser on this machine reaches the dashboard by.
LOCAL_NAMES = ("127.0.0.1", "localhost", "[::1]")
DEFAULT_PORT = 9181

Environ = dict[str, Any]
StartResponse = Callable[..., Any]
WsgiApp = Callable[[Environ, StartResponse], Iterable[bytes]]


class LocalOnly:
    """WSGI middleware: only same-origin requests addressed to a loopback name of `port`."""

    def __init__(self, app: WsgiApp, port: int) -> None:
        self.app = app
        self.hosts = {f"{name}:{port}" for name in LOCAL_NAMES}
        if port == 80:
            self.hosts.update(LOCAL_NAMES)
        self.origins = {f"http://{host}" for host in self.hosts}

    def allowed(self, environ: Environ) -> bool:
        """Whether the request names this dashboard and, if it changes anything, comes from it."""
        if environ.get("HTTP_HOST", "").lower() not in self.hosts:
            return False
        if environ.get("REQUEST_METHOD", "GET") in ("GET", "HEAD", "OPTIONS"):
            return True
        origin = environ.get("HTTP_ORIGIN")
        if origin is None:
            referer = urlsplit(environ.get("HTTP_REFERER", ""))
            origin = f"{referer.scheme}://{referer.netloc}" if referer.netloc else ""
        return origin.lower() in self.origins

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        if self.allowed(environ):
            return self.app(environ, start_response)
        body = b"Forbidden: the dashboard answers only same-origin requests from this machine.\n"
        start_response("403 Forbidden", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [body]


def main(argv: list[str] | None = None) -> int:
    """Serve rq-dashboard on --bind:--port (127.0.0.1 by default) behind LocalOnly."""
    parser = argparse.ArgumentParser(prog="python -m api.dashboard", description=__doc__)
    parser.add_argument("--redis-url", required=True)
    parser.add_argument(
        "--bind", default="127.0.0.1", help="listen address (0.0.0.0 only inside a container)"
    )
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    args = parser.parse_args(argv)
    try:
        from rq_dashboard.cli import make_flask_app
    except ImportError:
        print("imgpress: rq-dashboard is not installed; pip install '.[dashboard]'", file=sys.stderr)
        return 2
    # As rq-dashboard's own command does: no line per request on the terminal.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    app = make_flask_app(None, None, None, "")
    app.config["RQ_DASHBOARD_REDIS_URL"] = (args.redis_url,)
    app.wsgi_app = LocalOnly(app.wsgi_app, args.port)
    app.run(host=args.bind, port=args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
