"""s3:// through the artifact layer, over real HTTP against moto's server mode (an S3-protocol emulator,
standing in for MinIO or AWS S3: same boto3 client, custom endpoint, real requests on loopback)."""

from __future__ import annotations

import boto3
import pytest
from moto.server import ThreadedMotoServer

from ctloop import artifacts
from ctloop.errors import AccessError, NotFoundError


@pytest.fixture
def s3_endpoint(free_port, monkeypatch):
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="ctloop")
    artifacts.configure(s3_endpoint_url=endpoint)
    yield endpoint
    artifacts.configure()
    server.stop()


def test_round_trip_over_http(s3_endpoint):
    artifacts.write_bytes("s3://ctloop/spans/2026-01/data.parquet", b"PAR1")
    artifacts.write_bytes("s3://ctloop/spans/2026-01/manifest.json", b"{}")
    artifacts.write_bytes("s3://ctloop/spans/2026-01x/other", b"x")
    assert artifacts.read_bytes("s3://ctloop/spans/2026-01/data.parquet") == b"PAR1"
    assert artifacts.list_uris("s3://ctloop/spans/2026-01") == [
        "s3://ctloop/spans/2026-01/data.parquet",
        "s3://ctloop/spans/2026-01/manifest.json",
    ]
    assert artifacts.exists("s3://ctloop/spans/2026-01/manifest.json")
    assert artifacts.exists("s3://ctloop/spans/2026-01")  # a "folder" exists when something lies under it
    assert not artifacts.exists("s3://ctloop/spans/2027")
    # the same objects are visible to any other S3 client of that endpoint
    other = boto3.client("s3", endpoint_url=s3_endpoint)
    assert other.get_object(Bucket="ctloop", Key="spans/2026-01/data.parquet")["Body"].read() == b"PAR1"


def test_replace_overwrites_whole_object(s3_endpoint):
    uri = "s3://ctloop/models/champion.json"
    artifacts.write_bytes(uri, b"v1" * 1000)
    artifacts.write_bytes(uri, b"v2")
    assert artifacts.read_bytes(uri) == b"v2"


def test_missing_objects_and_buckets_name_the_uri(s3_endpoint):
    with pytest.raises(NotFoundError, match=r"s3://ctloop/none\.csv: no such object"):
        artifacts.read_bytes("s3://ctloop/none.csv")
    with pytest.raises(NotFoundError, match=r"s3://nobucket/x: no such bucket"):
        artifacts.read_bytes("s3://nobucket/x")


def test_missing_credentials_are_one_clear_line(s3_endpoint, monkeypatch, tmp_path):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    artifacts.configure(s3_endpoint_url=s3_endpoint)
    with pytest.raises(AccessError, match=r"s3://ctloop/x: no S3 credentials"):
        artifacts.read_bytes("s3://ctloop/x")
