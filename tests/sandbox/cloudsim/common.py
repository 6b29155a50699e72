"""What every simulated OpenStack service shares: error bodies (Nova/Cinder faults, Designate's,
Keystone's), microversion text, and the request with its negotiated microversion and token."""
import re

import httpbase
from .model import new_id

ApiError = httpbase.HttpError

FAULT_KEYS = {400: "badRequest", 401: "unauthorized", 403: "forbidden", 404: "itemNotFound",
              405: "badMethod", 409: "conflictingRequest", 413: "overLimit", 415: "badMediaType",
              429: "overLimit", 501: "notImplemented", 503: "serviceUnavailable"}


def os_fault(status, message):
    """Nova's and Cinder's error body."""
    return ApiError(status, {FAULT_KEYS.get(status, "computeFault"):
                             {"message": message, "code": status}})


def cinder_over_limit(message):
    """Cinder's over-quota answer as the real Cinder 21 gives it (seen in tests/realcloud): 413
    with "retryAfter": "0" in the body and a "Retry-After: 0" header (webob's OverLimit), which
    a client must not take for throttling."""
    return ApiError(413, {"overLimit": {"code": 413, "message": message, "retryAfter": "0"}},
                    {"Retry-After": "0"})


def designate_fault(status, type_, message):
    return ApiError(status, {"code": status, "type": type_, "message": message,
                             "request_id": "req-" + new_id()})


def keystone_fault(status, title, message):
    return ApiError(status, {"error": {"code": status, "title": title, "message": message}})


def parse_version(text):
    m = re.fullmatch(r"(\d+)\.(\d+)", text.strip())
    return (int(m.group(1)), int(m.group(2))) if m else None


def vstr(v):
    return f"{v[0]}.{v[1]}"


class Request(httpbase.Request):
    """A request with what the simulator learns about it: the microversion (`mv`) and the token."""

    def __init__(self, handler, method):
        super().__init__(handler, method)
        self.mv = None
        self.token = None
        self._json = None

    def json(self, fault=os_fault):
        if self._json is None:
            self._json = super().json(lambda e: fault(400, "Malformed request body"))
        return self._json


NOVA_MIN, NOVA_MAX = (2, 1), (2, 60)
CINDER_MIN, CINDER_MAX = (3, 0), (3, 60)
