"""S3 and S3-compatible object storage: where a repository's objects are, the client that reaches them, and
errors that say what to do.

A repository is `s3://bucket/prefix` plus settings (region, endpoint, profile, addressing style, server-side
encryption, storage class, retries, timeouts). Credentials come only from boto3's standard chain (environment,
shared config and credentials files, container and instance roles, web identity): the config never holds a
secret, and the secrets boto3 reads from the environment are registered so that they are masked everywhere.
boto3's own environment (`AWS_PROFILE`, `AWS_REGION`, `AWS_ENDPOINT_URL_S3`, `AWS_ENDPOINT_URL`) works with no
drtui setting at all, because every setting left out is left to boto3.

The layout under the prefix mirrors the local repository: `backups/` holds what backup_dir holds (the
runbook's file names), `wal/` one object per WAL file, `heartbeats/` the heartbeat files.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit

import botocore.exceptions

from drtui.core.errors import ConfigError, DrError, ErrorKind
from drtui.core.secrets import register_secret

SCHEME = "s3://"
BACKUPS = "backups/"
WAL = "wal/"
HEARTBEATS = "heartbeats/"
_SECRET_VARIABLES = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN")
T = TypeVar("T")
_ADDRESSING = ("auto", "virtual", "path")
_SSE = ("AES256", "aws:kms", "aws:kms:dsse")
_RETRY_MODES = ("standard", "adaptive", "legacy")


def is_s3_url(text: str | os.PathLike | None) -> bool:
    return isinstance(text, str) and text.lower().startswith(SCHEME)


@dataclass(frozen=True, order=True)
class S3Url:
    """An object (`key`) or a prefix (`key` ending in '/', or empty for the whole bucket)."""

    bucket: str
    key: str = ""

    @classmethod
    def parse(cls, text: str) -> S3Url:
        """`s3://bucket/key`; ValueError saying what is wrong (the caller names where the text came from)."""
        parts = urlsplit(text.strip())
        if parts.scheme.lower() != "s3":
            raise ValueError("not an s3:// URL")
        if not parts.netloc:
            raise ValueError("the URL names no bucket (write s3://BUCKET/PREFIX/)")
        if parts.query or parts.fragment:
            raise ValueError("an S3 URL has no ?query or #fragment")
        bucket = parts.netloc
        if not 3 <= len(bucket) <= 63 or bucket != bucket.lower() or bucket.strip("abcdefghijklmnopqrstuvwxyz"
                                                                                   "0123456789.-") != "":
            raise ValueError(f"{bucket!r} is not a valid bucket name (3-63 lowercase letters, digits, . and -)")
        return cls(bucket, parts.path.lstrip("/"))

    @property
    def is_prefix(self) -> bool:
        return not self.key or self.key.endswith("/")

    def as_prefix(self) -> S3Url:
        return self if self.is_prefix else S3Url(self.bucket, self.key + "/")

    def child(self, name: str) -> S3Url:
        """The object or prefix `name` inside this prefix."""
        return S3Url(self.bucket, self.as_prefix().key + name)

    @property
    def name(self) -> str:
        """The last part of the key, as a file's name (a prefix: its last folder)."""
        return self.key.rstrip("/").rsplit("/", 1)[-1]

    def __str__(self) -> str:
        return f"{SCHEME}{self.bucket}/{self.key}"


@dataclass(frozen=True)
class S3Settings:
    """How to reach the store. None everywhere means boto3's own defaults and environment."""

    region: str | None = None
    endpoint_url: str | None = None
    profile: str | None = None
    addressing_style: str | None = None  # auto, virtual or path (MinIO and Ceph often need path)
    sse: str | None = None  # AES256 or aws:kms
    sse_kms_key_id: str | None = None
    storage_class: str | None = None
    max_attempts: int | None = None
    retry_mode: str | None = None  # standard, adaptive or legacy
    connect_timeout: float | None = None
    read_timeout: float | None = None

    def write_args(self) -> dict[str, str]:
        """The extra arguments of every object written (put_object, upload_fileobj's ExtraArgs)."""
        args = {"ServerSideEncryption": self.sse, "SSEKMSKeyId": self.sse_kms_key_id,
                "StorageClass": self.storage_class}
        return {name: value for name, value in args.items() if value}

    def where(self) -> str:
        """The endpoint and region in words, for messages."""
        endpoint = self.endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get(
            "AWS_ENDPOINT_URL") or "AWS S3"
        region = self.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        return f"{endpoint}, region {region}" if region else endpoint


@dataclass(frozen=True)
class Repository:
    """An S3 repository: the config's [repository] table."""

    url: S3Url
    settings: S3Settings = field(default_factory=S3Settings)

    @property
    def backups(self) -> S3Url:
        return self.url.child(BACKUPS)

    @property
    def wal(self) -> S3Url:
        return self.url.child(WAL)

    @property
    def heartbeats(self) -> S3Url:
        return self.url.child(HEARTBEATS)


REPOSITORY_KEYS = {"url", *S3Settings.__dataclass_fields__}


def parse_repository(raw: Any, source: str) -> Repository:
    """The [repository] table of a config file (`source` names the file in errors)."""
    def bad(key: str, value: Any, problem: str, hint: str) -> ConfigError:
        return ConfigError(f"{source}: repository.{key} = {value!r} {problem}", hint)

    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: [repository] must be a table", 'write [repository] url = "s3://bucket/prefix/"')
    unknown = sorted(set(raw) - REPOSITORY_KEYS)
    if unknown:
        raise ConfigError(f"{source}: unknown key 'repository.{unknown[0]}'",
                          f"allowed here: {', '.join(sorted(REPOSITORY_KEYS))}")
    if "url" not in raw:
        raise ConfigError(f"{source}: [repository] has no url", 'add url = "s3://bucket/prefix/"')
    try:
        url = S3Url.parse(raw["url"]) if isinstance(raw["url"], str) else None
    except ValueError as exc:
        raise ConfigError(f"{source}: repository.url = {raw['url']!r} is not usable: {exc}",
                          'write it like "s3://mybucket/drtui/"') from None
    if url is None:
        raise bad("url", raw["url"], "is not a string", 'write it like "s3://mybucket/drtui/"')
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key == "url":
            continue
        if key == "max_attempts":
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 50:
                raise bad(key, value, "is not a number of attempts", "use 1-50")
        elif key in ("connect_timeout", "read_timeout"):
            if not isinstance(value, int | float) or isinstance(value, bool) or not 0 < value <= 3600:
                raise bad(key, value, "is not a timeout", "give seconds, e.g. 10")
            value = float(value)
        elif not isinstance(value, str) or not value:
            raise bad(key, value, "must be a non-empty string", "quote the value")
        choices = {"addressing_style": _ADDRESSING, "sse": _SSE, "retry_mode": _RETRY_MODES}.get(key)
        if choices and value not in choices:
            raise bad(key, value, "is not supported", f"use one of {', '.join(choices)}")
        values[key] = value
    if values.get("sse_kms_key_id") and not values.get("sse", "").startswith("aws:kms"):
        raise bad("sse_kms_key_id", values["sse_kms_key_id"], "needs sse", 'set sse = "aws:kms" as well')
    return Repository(url.as_prefix(), S3Settings(**values))


def _register_environment_secrets() -> None:
    for name in _SECRET_VARIABLES:
        register_secret(os.environ.get(name))


@functools.lru_cache(maxsize=16)
def _client(settings: S3Settings, environ_key: tuple[tuple[str, str], ...]) -> Any:
    import boto3  # a fifth of a second of imports (more from a cold cache): only for a command that uses S3
    import botocore.config

    session = boto3.session.Session(profile_name=settings.profile, region_name=settings.region)
    retries: dict[str, Any] = {}
    if settings.max_attempts:
        retries["total_max_attempts"] = settings.max_attempts
    if settings.retry_mode:
        retries["mode"] = settings.retry_mode
    options: dict[str, Any] = {"retries": retries} if retries else {}
    if settings.addressing_style:
        options["s3"] = {"addressing_style": settings.addressing_style}
    if settings.connect_timeout:
        options["connect_timeout"] = settings.connect_timeout
    if settings.read_timeout:
        options["read_timeout"] = settings.read_timeout
    return session.client("s3", endpoint_url=settings.endpoint_url, config=botocore.config.Config(**options))


def client(settings: S3Settings | None = None) -> Any:
    """A boto3 S3 client for these settings (clients are thread-safe: one per settings and environment).
    A bad profile is an ObjectStoreError, as every failure to reach the store."""
    settings = settings or S3Settings()
    _register_environment_secrets()
    environ_key = tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("AWS_")))
    try:
        return _client(settings, environ_key)
    except botocore.exceptions.ProfileNotFound as exc:
        raise ObjectStoreError(f"the AWS profile {exc.kwargs.get('profile')!r} is not configured",
                               "fix repository.profile / AWS_PROFILE, or add the profile to ~/.aws/config",
                               ErrorKind.BAD_INPUT) from None


class ObjectStoreError(DrError):
    """The object store refused or failed a request. The title names the bucket and key."""

    def __init__(self, title: str, hint: str = "", kind: ErrorKind = ErrorKind.FAILED,
                 code: str | None = None) -> None:
        super().__init__(title, hint)
        self.kind = kind
        self.code = code  # the store's error code (NoSuchKey, AccessDenied, SlowDown, ...) or None

    @property
    def not_found(self) -> bool:
        """The store said 404: the object is not there. Only this may end a WAL early; a 5xx never does."""
        return self.code in ("NoSuchKey", "404", "NotFound")


def refusing(look: Callable[..., T]) -> Callable[..., T]:
    """For what looks before anything is touched (planning): a store error found there is a refusal (exit 2),
    whatever it would be mid-run (a 5xx, a timeout: exit 1, after the run undid its steps)."""
    @functools.wraps(look)
    def looking(*args: Any, **kwargs: Any) -> T:
        try:
            return look(*args, **kwargs)
        except ObjectStoreError as exc:
            if exc.kind is not ErrorKind.FAILED:
                raise
            raise ObjectStoreError(exc.title, f"{exc.hint} (nothing was touched)", ErrorKind.REFUSED,
                                   exc.code) from None
    return looking


_MISSING = ("NoSuchKey", "404", "NotFound")
_THROTTLED = ("SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequests",
              "503 SlowDown")
_DENIED = ("AccessDenied", "403", "Forbidden", "AllAccessDisabled", "InvalidAccessKeyId",
           "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken")
_WRONG_REGION = ("PermanentRedirect", "AuthorizationHeaderMalformed", "IllegalLocationConstraintException",
                 "301")


_DAMAGED_HINT = ("a broken transfer or a damaged object; nothing was changed: run the command again, and if it "
                 "fails again the object in the bucket is damaged: use another backup (`drtui inventory` lists them)")


def _from_s3(response: dict[str, Any], code: str) -> bool:
    """Whether an error answer came from an S3 API: S3's XML error code, or (a HEAD has no body) S3's own
    headers. A bare 404 from another server must never pass for a missing object: that would end a WAL."""
    if not code.isdigit():
        return True
    headers = response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
    return any(name.lower().startswith(("x-amz-", "x-amzn-")) for name in headers)


def short_object(url: S3Url, listed: int, received: int, action: str) -> ObjectStoreError:
    """An object that came back shorter (or longer) than the listing or HEAD said it is."""
    return ObjectStoreError(f"{url}: {received} bytes arrived where the store listed {listed} (to {action})",
                            _DAMAGED_HINT, ErrorKind.FAILED, "ShortObject")


class WholeBody:
    """An object's body that raises instead of ending early. A body that stops short of the size the store
    listed is a broken transfer or a damaged object, never the end of the data: a reader would otherwise take
    it for a truncated backup and tell the operator not to restore from it."""

    def __init__(self, body: Any, url: S3Url, size: int, action: str) -> None:
        self._body, self._url, self._size, self._action = body, url, size, action
        self._got = 0

    def read(self, amt: int | None = -1) -> bytes:
        whole = amt is None or amt < 0
        data = self._body.read(None if whole else amt)
        self._got += len(data)
        if (whole or (amt and not data)) and self._got != self._size:
            raise short_object(self._url, self._size, self._got, self._action)
        return data

    def close(self) -> None:
        self._body.close()

    def __enter__(self) -> WholeBody:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def store_error(exc: Exception, url: S3Url, action: str, settings: S3Settings | None = None) -> ObjectStoreError:
    """One message for a failed request: what failed, on which bucket and key, and what to do.
    `action` says what drtui was doing ("read the WAL listing", "upload the base backup")."""
    settings = settings or S3Settings()
    where = settings.where()
    if isinstance(exc, ObjectStoreError):
        return exc
    if isinstance(exc, botocore.exceptions.NoCredentialsError | botocore.exceptions.PartialCredentialsError):
        return ObjectStoreError(
            f"no AWS credentials to {action} ({url})",
            "give drtui credentials through boto3's standard chain: AWS_PROFILE or AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY in its environment, ~/.aws/credentials, or an instance or container role",
            ErrorKind.REFUSED, "NoCredentials")
    if isinstance(exc, botocore.exceptions.EndpointConnectionError | botocore.exceptions.ConnectTimeoutError):
        return ObjectStoreError(f"cannot reach the object store to {action} ({url}, at {where})",
                                "check repository.endpoint_url / AWS_ENDPOINT_URL_S3 and the network; "
                                "nothing was changed, run the command again once it answers",
                                ErrorKind.FAILED, "Unreachable")
    if isinstance(exc, botocore.exceptions.ReadTimeoutError):
        return ObjectStoreError(f"the object store stopped answering while drtui tried to {action} ({url})",
                                "the request timed out after retries; check the network and the store's health, "
                                "then run the command again (repository.read_timeout, max_attempts)",
                                ErrorKind.FAILED, "Timeout")
    if isinstance(exc, botocore.exceptions.ConnectionClosedError | botocore.exceptions.IncompleteReadError
                  | botocore.exceptions.ResponseStreamingError):
        return ObjectStoreError(f"the connection to the object store broke while drtui tried to {action} ({url})",
                                "the transfer was cut off before the object's end; check the network and the "
                                "store's health, then run the command again", ErrorKind.FAILED, "ConnectionBroken")
    if isinstance(exc, botocore.exceptions.FlexibleChecksumError):
        return ObjectStoreError(f"{url}: arrived different from what the store holds, its checksum does not "
                                f"match (to {action})", _DAMAGED_HINT, ErrorKind.FAILED, "ChecksumMismatch")
    if isinstance(exc, botocore.exceptions.ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code") or exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if not _from_s3(exc.response, code):
            return ObjectStoreError(f"{where} answered HTTP {status} without S3's error format: it is not an S3 "
                                    f"API (to {action} on {url})",
                                    "check repository.endpoint_url / AWS_ENDPOINT_URL_S3: it must be the store's "
                                    "S3 API address (not a web console or another service)", ErrorKind.REFUSED,
                                    "NotS3")
        if code == "NoSuchBucket":
            return ObjectStoreError(f"the bucket {url.bucket!r} does not exist at {where} (to {action})",
                                    "check the bucket name in the URL, repository.endpoint_url and region",
                                    ErrorKind.REFUSED, code)
        if code in _MISSING:
            return ObjectStoreError(f"no object {url} (to {action})",
                                    "check the key; `drtui inventory` lists what the repository holds",
                                    ErrorKind.REFUSED, code)
        if code in _DENIED:
            return ObjectStoreError(f"access denied to {url} (to {action}, {code})",
                                    "the credentials drtui runs with lack the permission: see the README's IAM "
                                    "policies (a restore host needs s3:GetObject and s3:ListBucket on the "
                                    "repository; a backup host s3:PutObject too)", ErrorKind.REFUSED, code)
        if code in _WRONG_REGION:
            region = exc.response.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("x-amz-bucket-region")
            told = f"the bucket {url.bucket!r} is in region {region}" if region else \
                f"the bucket {url.bucket!r} is in another region than {where}"
            return ObjectStoreError(f"{told} (to {action})",
                                    f"set repository.region{f' = {region!r}' if region else ''} or AWS_REGION",
                                    ErrorKind.REFUSED, code)
        if code in _THROTTLED:
            return ObjectStoreError(f"the object store is throttling requests (SlowDown) on {url} (to {action})",
                                    "drtui retried and gave up; run it again later, or set "
                                    "repository.retry_mode = \"adaptive\" and a higher max_attempts",
                                    ErrorKind.FAILED, code)
        if isinstance(status, int) and status >= 500:
            return ObjectStoreError(f"the object store failed (HTTP {status} {code}) on {url} (to {action})",
                                    "a server-side error that persisted through retries; check the store's "
                                    "health and run the command again", ErrorKind.FAILED, code)
        message = error.get("Message") or code
        return ObjectStoreError(f"the object store refused to {action} on {url}: {message} ({code})",
                                "check the repository settings in drtui.toml", ErrorKind.FAILED, code)
    if isinstance(exc, botocore.exceptions.BotoCoreError):
        return ObjectStoreError(f"could not {action} ({url}): {exc}", "check the repository settings",
                                ErrorKind.FAILED, type(exc).__name__)
    raise exc
