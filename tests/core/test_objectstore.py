"""The S3 foundation: URLs, the [repository] table, the client, and errors against a real S3 server."""

from __future__ import annotations

from pathlib import Path

import pytest

from drtui.core.config import parse_config
from drtui.core.errors import ConfigError, ErrorKind
from drtui.core.objectstore import S3Settings, S3Url, client, is_s3_url, parse_repository, store_error
from drtui.core.secrets import redact
from tests.s3world import SECRET_KEY

SOURCE = Path("/etc/drtui/drtui.toml")


def test_urls_are_parsed_whole():
    url = S3Url.parse("s3://mybucket/wal-archive/")
    assert (url.bucket, url.key, url.is_prefix, str(url)) == ("mybucket", "wal-archive/", True,
                                                              "s3://mybucket/wal-archive/")
    assert S3Url.parse("s3://mybucket").child("wal/").child("000000010000000000000001") == \
        S3Url("mybucket", "wal/000000010000000000000001")
    assert S3Url.parse("s3://b-1.x/backups/basebackup_x.tar.gz").name == "basebackup_x.tar.gz"
    assert is_s3_url("S3://Bucket") and not is_s3_url("/var/lib/x") and not is_s3_url(None)
    for bad, why in (("s3:///key", "no bucket"), ("s3://My_Bucket/x", "not a valid bucket"),
                     ("s3://bucket/x?versionId=1", "no .query"), ("/tmp/x", "not an s3:// URL")):
        with pytest.raises(ValueError, match=why):
            S3Url.parse(bad)


def test_the_repository_table_is_checked_key_by_key():
    repo = parse_repository({"url": "s3://backups/prod", "region": "eu-west-1", "sse": "aws:kms",
                             "sse_kms_key_id": "alias/drtui", "max_attempts": 8, "read_timeout": 30}, "x.toml")
    assert str(repo.url) == "s3://backups/prod/" and str(repo.wal) == "s3://backups/prod/wal/"
    assert repo.settings.write_args() == {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": "alias/drtui"}
    cases = [({"url": "s3://bkt/x", "secret_access_key": "k"}, "unknown key 'repository.secret_access_key'"),
             ({"region": "x"}, "has no url"),
             ({"url": "s3:/b/x"}, "is not usable"),
             ({"url": "s3://bkt/x", "sse": "aes"}, "repository.sse = 'aes' is not supported"),
             ({"url": "s3://bkt/x", "max_attempts": 0}, "is not a number of attempts"),
             ({"url": "s3://bkt/x", "sse_kms_key_id": "k"}, "needs sse")]
    for raw, words in cases:
        with pytest.raises(ConfigError, match=words) as caught:
            parse_repository(raw, "x.toml")
        assert "x.toml" in caught.value.title and caught.value.hint


def test_a_config_without_repository_stays_local():
    data = {"environments": {"production": {}}}
    assert parse_config(data, SOURCE).repository is None
    data["repository"] = {"url": "s3://mybucket/drtui/"}
    assert str(parse_config(data, SOURCE).repository.url) == "s3://mybucket/drtui/"


def test_errors_name_bucket_and_key_and_never_the_secret(s3):
    bucket = s3.bucket()
    s3client = client(S3Settings())
    missing = S3Url(bucket, "backups/basebackup_20261201T000000Z.tar.gz")
    with pytest.raises(Exception) as caught:
        s3client.head_object(Bucket=bucket, Key=missing.key)
    error = store_error(caught.value, missing, "read the base backup")
    assert error.not_found and error.kind is ErrorKind.REFUSED and str(missing) in error.title
    with pytest.raises(Exception) as caught:
        s3client.list_objects_v2(Bucket="drtui-no-such-bucket")
    error = store_error(caught.value, S3Url("drtui-no-such-bucket", "wal/"), "list the WAL")
    assert "'drtui-no-such-bucket' does not exist" in error.title and not error.not_found
    assert s3.endpoint in error.title
    assert SECRET_KEY not in redact(f"{error} {SECRET_KEY}")


def test_an_unreachable_endpoint_is_one_clear_message(s3):
    settings = S3Settings(endpoint_url="http://127.0.0.1:9", max_attempts=1, connect_timeout=1)
    with pytest.raises(Exception) as caught:
        client(settings).list_objects_v2(Bucket="whatever")
    error = store_error(caught.value, S3Url("whatever", "wal/"), "list the WAL", settings)
    assert error.title.startswith("cannot reach the object store to list the WAL (s3://whatever/wal/, at "
                                  "http://127.0.0.1:9")
    assert "endpoint_url" in error.hint and error.code == "Unreachable"
