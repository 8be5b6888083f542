"""A loopback S3 for tests: moto's server mode on 127.0.0.1, a real HTTP S3 API.

:func:`serve` starts it and sets the standard AWS variables (dummy keys, the
region, ``AWS_ENDPOINT_URL``) in this process's environment, so tickrec finds
it the way a user's S3-compatible store is found; they are restored after.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager

import boto3
from moto.server import ThreadedMotoServer

__all__ = ["S3", "serve"]


class S3:
    """The running server: its endpoint URL and a boto3 client on it."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.client = boto3.client("s3", endpoint_url=url)

    def bucket(self, name: str) -> str:
        """Create bucket *name* and return ``s3://name``."""
        self.client.create_bucket(Bucket=name)
        return f"s3://{name}"

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        """Every key under *prefix*, sorted."""
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


@contextmanager
def serve() -> Iterator[S3]:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": f"http://{host}:{port}",
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield S3(env["AWS_ENDPOINT_URL"])
    finally:
        server.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
