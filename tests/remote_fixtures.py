"""Session fixtures for storage and cluster tests: a local S3 server (moto, bound to 127.0.0.1)
and a local Ray cluster, each started once and shared by the tests that ask for them."""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

BUCKET = "imgfeat-test"


@dataclass
class S3:
    """The running server: its storage options (fake keys moto accepts) and an s3fs client."""

    options: dict
    fs: object
    endpoint: str

    def prefix(self, name: str = "") -> str:
        """A fresh, unique prefix in the test bucket."""
        return f"s3://{BUCKET}/{name or 'run'}-{uuid.uuid4().hex[:8]}"

    def upload(self, local: Path, url: str) -> str:
        """Copy a local folder's files under ``url``."""
        for p in sorted(local.rglob("*")):
            if p.is_file():
                self.fs.pipe_file(f"{url}/{p.relative_to(local).as_posix()}"[5:],
                                  p.read_bytes())
        return url


@pytest.fixture(scope="session")
def s3():
    pytest.importorskip("s3fs", reason="the s3 extra is not installed")
    server_mod = pytest.importorskip("moto.server", reason="moto[server] is not installed")
    import s3fs

    os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
    server = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    options = {"endpoint_url": endpoint, "key": "testing-key-id", "secret": "testing-secret",
               "client_kwargs": {"region_name": "us-east-1"}}
    import boto3

    boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=options["key"],
                 aws_secret_access_key=options["secret"],
                 region_name="us-east-1").create_bucket(Bucket=BUCKET)
    fs = s3fs.S3FileSystem(**options)
    yield S3(options, fs, endpoint)
    server.stop()


@dataclass
class RayCluster:
    address: str
    fault_file: Path


@pytest.fixture(scope="session")
def ray_cluster(tmp_path_factory):
    ray = pytest.importorskip("ray", reason="the ray extra is not installed")
    from tests.ray_faults import FAULT_ENV

    fault = tmp_path_factory.mktemp("ray-fault") / "kill-one-actor"
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False,
             runtime_env={"env_vars": {FAULT_ENV: str(fault)}})
    yield RayCluster(ray.get_runtime_context().gcs_address, fault)
    ray.shutdown()
