"""A real S3 API for the tests: moto's standalone server, in a process of its own, over HTTP on 127.0.0.1.

boto3 talks to it over the network exactly as to AWS (no in-process patching). One server per test worker;
each test gets a bucket of its own (`S3World.bucket()`), emptied and deleted when the test ends, pass or fail.
`S3World.env` is the environment a drtui subprocess needs: boto3's standard variables, nothing drtui-specific.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import boto3
import httpx

ACCESS_KEY = "drtui-test-access-key"
SECRET_KEY = "drtui-test-secret-key-never-printed"
REGION = "eu-west-1"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def moto_server_command(host: str, port: int) -> list[str]:
    """moto's standalone server, as `moto_server` of the running Python."""
    script = shutil.which("moto_server", path=os.path.dirname(sys.executable))
    if script:
        return [script, "-H", host, "-p", str(port)]
    return [sys.executable, "-m", "moto.server", "-H", host, "-p", str(port)]


@dataclass
class S3Server:
    """One moto server process; `stop()` ends it."""

    host: str = "127.0.0.1"
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, wrap: list[str] | None = None) -> S3Server:
        """Start it (`wrap` prefixes the command, e.g. `ip netns exec NS`) and wait until it answers."""
        self.process = subprocess.Popen([*(wrap or []), *moto_server_command(self.host, self.port)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                        start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"moto_server exited with {self.process.returncode}")
            try:
                httpx.get(f"{self.endpoint}/moto-api/", timeout=1)
                return self
            except httpx.HTTPError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"moto_server did not answer on {self.endpoint} within 30 s")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@dataclass
class S3World:
    """A running S3 server and the buckets a test made on it."""

    server: S3Server
    buckets: list[str] = field(default_factory=list)

    @property
    def endpoint(self) -> str:
        return self.server.endpoint

    @property
    def env(self) -> dict[str, str]:
        """boto3's standard environment for this server (what an operator would set), for subprocesses."""
        return {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "AWS_REGION": REGION,
                "AWS_ENDPOINT_URL_S3": self.endpoint, "AWS_EC2_METADATA_DISABLED": "true"}

    def client(self):
        return boto3.client("s3", endpoint_url=self.endpoint, region_name=REGION, aws_access_key_id=ACCESS_KEY,
                            aws_secret_access_key=SECRET_KEY)

    def bucket(self, prefix: str = "drtui-test") -> str:
        """A new empty bucket, deleted with all it holds when the test ends."""
        name = f"{prefix}-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION})
        self.buckets.append(name)
        return name

    def keys(self, bucket: str, prefix: str = "") -> dict[str, int]:
        """Every object under `prefix`: key → size."""
        found: dict[str, int] = {}
        for page in self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            found.update({item["Key"]: item["Size"] for item in page.get("Contents", [])})
        return found

    def drop_buckets(self) -> None:
        s3 = self.client()
        for name in self.buckets:
            for key in self.keys(name):
                s3.delete_object(Bucket=name, Key=key)
            for upload in s3.list_multipart_uploads(Bucket=name).get("Uploads", []):
                s3.abort_multipart_upload(Bucket=name, Key=upload["Key"], UploadId=upload["UploadId"])
            s3.delete_bucket(Bucket=name)
        self.buckets.clear()


@contextmanager
def running_s3_server(wrap: list[str] | None = None, host: str = "127.0.0.1") -> Iterator[S3Server]:
    server = S3Server(host=host).start(wrap)
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def s3_environment(world: S3World) -> Iterator[None]:
    """boto3's standard environment pointed at the test server, in this process, put back afterwards."""
    saved = {name: os.environ.get(name) for name in world.env}
    os.environ.update(world.env)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
