"""The small HTTP base the sandbox's API doubles share (the cloud simulator, the Data Plane API
double): routes by method and path pattern, JSON bodies, error answers, and a threaded HTTP/1.1
server on a loopback address.

An App answers each request with (status, payload, headers): payload None (no body), bytes (sent
as they are) or anything JSON-serialisable. Raising HttpError answers with its status, body and
headers; any other exception goes to App.internal_error. What differs between the doubles (error
body shapes, authentication, capture) stays in them; this module only carries the plumbing.

Stdlib only; nothing here is shared with the C++ client.
"""
import json
import re
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class HttpError(Exception):
    """An answer other than success: `body` is the payload as the API being doubled writes it."""

    def __init__(self, status, body, headers=None):
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = headers or {}


class Request:
    """One request, read in full: method, path (as sent, not unquoted), query (name -> list of
    values), raw body bytes and the handler's headers."""

    def __init__(self, handler, method):
        parsed = urllib.parse.urlsplit(handler.path)
        self.handler = handler
        self.method = method
        self.path = parsed.path
        self.query = urllib.parse.parse_qs(parsed.query, keep_blank_values=True)
        length = int(handler.headers.get("Content-Length") or 0)
        self.raw = handler.rfile.read(length) if length > 0 else b""
        self.headers = handler.headers

    def q(self, name, default=None):
        """The last value of a query parameter."""
        values = self.query.get(name)
        return values[-1] if values else default

    def args(self):
        """The query as name -> last value."""
        return {k: v[-1] for k, v in self.query.items()}

    def json(self, error):
        """The body as JSON; `error(message)` makes the HttpError raised when it is not JSON."""
        try:
            return json.loads(self.raw.decode() if self.raw else "")
        except (ValueError, UnicodeDecodeError) as e:
            raise error(e)


class Router:
    """Routes: (method or "*", path regex matched in full, target, extra fields). match() answers
    the first route whose pattern and method fit, or says whether only the method did not."""

    def __init__(self):
        self.routes = []

    def add(self, method, pattern, target, *extra):
        self.routes.append((method, re.compile(pattern), target) + tuple(extra))

    def match(self, method, path):
        """(route, params) for the first fit; (None, True) when some route has this path but none
        this method; (None, False) when no route has this path."""
        path_known = False
        for route in self.routes:
            m = route[1].fullmatch(path)
            if m is None:
                continue
            path_known = True
            if route[0] in ("*", method):
                return route, m.groupdict()
        return None, path_known


def send(handler, status, data, headers, content_type="application/json"):
    """Writes one response. Content-Type is added (unless given) when there is a body or the
    status is one that normally has one; a client that asked for Connection: close is told so."""
    headers = dict(headers)
    if data or status not in (202, 204):
        headers.setdefault("Content-Type", content_type)
    handler.send_response(status)
    for k, v in headers.items():
        handler.send_header(k, v)
    handler.send_header("Content-Length", str(len(data)) if status != 204 else "0")
    if handler.close_connection:
        # Real API servers say so: without it, http.client keeps the socket for reuse, and a
        # request sent on it while this side closes it fails with "closed connection without
        # response" (tempest asks for Connection: close).
        handler.send_header("Connection", "close")
    handler.end_headers()
    if data and status != 204 and handler.command != "HEAD":
        handler.wfile.write(data)


class App:
    """What a double implements. `methods` are the HTTP methods it answers at all (others get
    http.server's 501); `server_version` names it in the Server header (None: Python's)."""

    methods = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
    server_version = None

    def handle(self, req):
        raise NotImplementedError

    def internal_error(self, req, exc):
        """The answer to an unexpected exception; the default re-raises it (connection dropped)."""
        raise exc

    def encode(self, payload):
        if payload is None:
            return b""
        if isinstance(payload, (bytes, bytearray)):
            return bytes(payload)
        return json.dumps(payload).encode()

    def complete_headers(self, req, status, headers):
        """Headers every answer carries (errors included), added just before sending."""

    def answered(self, req, status, headers, payload):
        """Called after each response (e.g. to capture the exchange)."""

    def access_log(self, line):
        """One line per request, as http.server formats it; quiet by default."""

    def dispatch(self, handler, method):
        req = self.make_request(handler, method)
        try:
            status, payload, headers = self.handle(req)
            headers = dict(headers or {})
        except HttpError as e:
            status, payload, headers = e.status, e.body, dict(e.headers)
        except Exception as e:  # noqa: BLE001 - the app decides what a bug looks like
            status, payload, headers = self.internal_error(req, e)
        self.complete_headers(req, status, headers)
        send(handler, status, self.encode(payload), headers)
        self.answered(req, status, headers, payload)

    def make_request(self, handler, method):
        return Request(handler, method)


def make_server(app, host, port):
    """A threaded HTTP/1.1 server for `app` on (host, port), not yet serving. Loopback only: the
    sandbox's doubles are never reachable from elsewhere."""
    if not host.startswith("127.") and host != "localhost":
        raise ValueError(f"{host}: the sandbox's servers listen on loopback only")

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):
            app.access_log(fmt % args)

    if app.server_version:
        Handler.server_version = app.server_version
    for method in app.methods:
        setattr(Handler, "do_" + method, lambda self, m=method: app.dispatch(self, m))
    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    return server


def serve_until_signalled(server, poll_interval=0.2):
    """serve_forever until SIGTERM or SIGINT (shutdown from another thread, as it must be)."""
    import signal

    def stop(signum, frame):
        threading.Thread(target=server.shutdown, daemon=True).start()
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    server.serve_forever(poll_interval=poll_interval)


def log_to_stderr(prefix):
    return lambda line: sys.stderr.write(f"{prefix}: {line}\n")
