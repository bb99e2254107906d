"""A real S3-compatible server for the tests: moto's server mode on 127.0.0.1, one per process.

Not a mock of the client: pyarrow's own S3 client talks HTTP to it, exactly as it would to AWS,
reaching it through AWS_ENDPOINT_URL (the variable a user would set for MinIO or Ceph). The same
server answers EC2 and IAM calls, which tests/test_cluster.py uses to run `ray up`'s bootstrap.

Use: `pytest_plugins = ["s3_server"]` in a test module. Fixtures: `aws_endpoint` sets the AWS
variables for the session and returns the server's URL; `s3_bucket` is the session's bucket URI;
`s3_out` a fresh s3:// prefix per test. The server is a process-wide singleton, so fixtures that
reach it from several places still share one server.
"""

from __future__ import annotations

import atexit
import functools
import logging
import os
import socket
import uuid

import pytest

BUCKET = "raysweep-test"
REGION = "us-east-1"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@functools.cache
def start() -> str:
    """Start the server and create BUCKET (once per process); returns the endpoint URL."""
    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one log line per request otherwise
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    atexit.register(server.stop)
    endpoint = f"http://127.0.0.1:{port}"
    boto3.client("s3", endpoint_url=endpoint, region_name=REGION, aws_access_key_id="testing",
                 aws_secret_access_key="testing").create_bucket(Bucket=BUCKET)
    return endpoint


ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
       "AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION}


@pytest.fixture(scope="session")
def aws_endpoint() -> str:
    """The server's URL, with the AWS variables pointing at it for this process (and for any Ray
    worker it starts, which inherits them); restored afterwards."""
    saved = {k: os.environ.get(k) for k in [*ENV, "AWS_ENDPOINT_URL"]}
    endpoint = start()
    os.environ.update(ENV, AWS_ENDPOINT_URL=endpoint)
    yield endpoint
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def s3_bucket(aws_endpoint) -> str:
    """s3://BUCKET on the local server."""
    return f"s3://{BUCKET}"


@pytest.fixture
def s3_out(s3_bucket) -> str:
    """A fresh, empty output location on the server for one test."""
    return f"{s3_bucket}/{uuid.uuid4().hex[:12]}"
