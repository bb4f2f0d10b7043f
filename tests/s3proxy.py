"""A fault-injecting HTTP proxy between boto3 and the S3 test server, for the fault tests.

boto3 is pointed at the proxy (`endpoint`); the proxy forwards each request to the real server unchanged and
passes the answer back, unless a `Rule` matches the request: then it answers as a failing S3 would — an error
status with S3's XML error body (500, 503 SlowDown, 403 AccessDenied, a wrong region), a connection cut after
some bytes of the object, a slow answer, or an object shorter than the listing says. Every request is logged
(`requests`), so a test can also assert what drtui did *not* ask for (no PUT, no LIST per segment).
"""

from __future__ import annotations

import fnmatch
import http.client
import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

_HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade"}
_CHUNK = 64 * 1024


@dataclass
class Rule:
    """What to do with the requests that match: `method` and `key` (a glob on `bucket/key`, e.g.
    "*/wal/0000*"), `query` (a word the query string must hold, e.g. "list-type"), `times` (how many
    matching requests it hits; None: all). One action: `status` + `code` (an S3 error answer), `cut_after`
    (forward that many bytes of the answer's body, then drop the connection), `delay` (seconds before
    answering), `short_by` (serve the object that many bytes shorter, with a Content-Length that agrees),
    `bucket_region` (answer as AWS does when the request is signed for another region; `region_named=False`
    leaves out the header and element that name the bucket's region, so that botocore cannot follow it)."""

    method: str = "*"
    key: str = "*"
    query: str = ""
    times: int | None = None
    status: int | None = None
    code: str = ""
    cut_after: int | None = None
    delay: float = 0.0
    short_by: int = 0
    bucket_region: str | None = None
    region_named: bool = True
    hits: int = 0

    def matches(self, method: str, path: str, query: str, region: str | None) -> bool:
        if self.times is not None and self.hits >= self.times:
            return False
        if self.method != "*" and self.method != method:
            return False
        if not fnmatch.fnmatchcase(path, self.key) or self.query not in query:
            return False
        return not (self.bucket_region and region == self.bucket_region)


@dataclass(frozen=True)
class Seen:
    """One request the proxy received, and what it answered (`fault`: the rule's action, or "")."""

    method: str
    path: str  # bucket/key, unquoted
    query: str
    status: int
    fault: str


_MESSAGES = {"SlowDown": "Please reduce your request rate.", "InternalError": "We encountered an internal error.",
             "AccessDenied": "Access Denied", "ServiceUnavailable": "Service is unable to handle request."}


def error_body(code: str, message: str, resource: str, extra: str = "") -> bytes:
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{message}</Message>'
            f"<Resource>/{resource}</Resource>{extra}<RequestId>drtui-proxy</RequestId></Error>").encode()


def signing_region(authorization: str) -> str | None:
    """The region a SigV4 request is signed for (Credential=KEY/DATE/REGION/s3/aws4_request)."""
    found = re.search(r"Credential=[^/]+/\d+/([^/]+)/", authorization or "")
    return found.group(1) if found else None


@dataclass
class S3Proxy:
    """The proxy, listening on `host`:`port` and forwarding to `upstream` (http://host:port)."""

    upstream: str
    host: str = "127.0.0.1"
    port: int = 0
    rules: list[Rule] = field(default_factory=list)
    requests: list[Seen] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def add(self, **rule: object) -> Rule:
        """A new rule, checked before the older ones."""
        made = Rule(**rule)  # type: ignore[arg-type]
        with self._lock:
            self.rules.insert(0, made)
        return made

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()
            self.requests.clear()

    def seen(self, method: str = "*", key: str = "*") -> list[Seen]:
        with self._lock:
            return [r for r in self.requests if method in ("*", r.method) and fnmatch.fnmatchcase(r.path, key)]

    def _take(self, method: str, path: str, query: str, region: str | None) -> Rule | None:
        with self._lock:
            for rule in self.rules:
                if rule.matches(method, path, query, region):
                    rule.hits += 1
                    return rule
        return None

    def _log(self, seen: Seen) -> None:
        with self._lock:
            self.requests.append(seen)

    def start(self) -> S3Proxy:
        proxy = self
        upstream = urlsplit(self.upstream)

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    parts = []
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            return b"".join(parts)
                        parts.append(self.rfile.read(size))
                        self.rfile.readline()
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _error(self, status: int, code: str, resource: str, headers: dict[str, str] | None = None,
                       extra: str = "") -> None:
                body = b"" if self.command == "HEAD" else error_body(code, _MESSAGES.get(code, code), resource,
                                                                      extra)
                self.send_response(status)
                for name, value in {"Content-Type": "application/xml", "x-amz-request-id": "drtui-proxy",
                                    **(headers or {})}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _handle(self) -> None:
                parts = urlsplit(self.path)
                path, query = unquote(parts.path.lstrip("/")), parts.query
                body = self._body()
                region = signing_region(self.headers.get("Authorization", ""))
                rule = proxy._take(self.command, path, query, region)
                if rule and rule.delay:
                    time.sleep(rule.delay)
                if rule and rule.bucket_region:
                    proxy._log(Seen(self.command, path, query, 400, "region"))
                    named = rule.region_named
                    self._error(400, "AuthorizationHeaderMalformed", path,
                                {"x-amz-bucket-region": rule.bucket_region} if named else {},
                                f"<Region>{rule.bucket_region}</Region>" if named else "")
                    return
                if rule and rule.status:
                    proxy._log(Seen(self.command, path, query, rule.status, rule.code or str(rule.status)))
                    self._error(rule.status, rule.code or "InternalError", path)
                    return
                connection = http.client.HTTPConnection(upstream.hostname, upstream.port, timeout=60)
                try:
                    headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                    if body or self.command in ("PUT", "POST"):
                        headers["Content-Length"] = str(len(body))
                    connection.request(self.command, self.path, body=body, headers=headers)
                    answer = connection.getresponse()
                    self._forward(answer, rule, path, query)
                finally:
                    connection.close()

            def _forward(self, answer: http.client.HTTPResponse, rule: Rule | None, path: str, query: str) -> None:
                length = answer.getheader("Content-Length")
                content = None if length is not None else answer.read()
                size = int(length) if length is not None else len(content or b"")
                send = size
                fault = ""
                if rule and rule.short_by and answer.status in (200, 206) and self.command == "GET":
                    send = max(0, size - rule.short_by)
                    fault = "short"
                self.send_response(answer.status)
                for name, value in answer.getheaders():
                    if name.lower() not in _HOP_BY_HOP and name.lower() != "content-length":
                        self.send_header(name, value)
                self.send_header("Content-Length", str(send))
                self.end_headers()
                if self.command == "HEAD":
                    proxy._log(Seen(self.command, path, query, answer.status, fault))
                    return
                limit = rule.cut_after if rule and rule.cut_after is not None else None
                proxy._log(Seen(self.command, path, query, answer.status, "cut" if limit is not None else fault))
                written = 0
                while written < send:
                    if content is not None:
                        chunk, content = content[:_CHUNK], content[_CHUNK:]
                    else:
                        chunk = answer.read(min(_CHUNK, size - written))
                    if not chunk:
                        break
                    chunk = chunk[:send - written]
                    if limit is not None and written + len(chunk) >= limit:
                        self.wfile.write(chunk[:limit - written])
                        self.wfile.flush()
                        self.connection.shutdown(socket.SHUT_RDWR)
                        self.close_connection = True
                        return
                    self.wfile.write(chunk)
                    written += len(chunk)

            def _serve(self) -> None:
                try:
                    self._handle()
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (a timeout, a cut)
                    self.close_connection = True

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _serve

        self._server = ThreadingHTTPServer((self.host, self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, name="s3proxy", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


@contextmanager
def running_proxy(upstream: str) -> Iterator[S3Proxy]:
    proxy = S3Proxy(upstream).start()
    try:
        yield proxy
    finally:
        proxy.stop()
