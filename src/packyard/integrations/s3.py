"""An S3-compatible bucket below a key prefix, with boto3: the ``ObjectStore`` port that
publication pushes write to (AWS S3, MinIO, Ceph RGW, anything speaking the S3 protocol).

Credentials come from ``[publish.s3]`` when set, else from boto3's usual chain
(``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, ``~/.aws``, instance roles). boto3 is
imported when a store is opened, so commands that never push do not pay for it.

Not handled: bucket creation and policies (an operator decides who may read the bucket),
object ACLs, server-side encryption settings (set bucket defaults instead).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, BinaryIO

from packyard.config import S3Settings
from packyard.domain.errors import ConfigError, NotAuthorized, NotFound, PackyardError

__all__ = ["S3ObjectStore", "S3Unavailable", "open_object_store", "parse_s3_url"]

_URL = re.compile(r"s3://(?P<bucket>[a-z0-9][a-z0-9.\-]{1,62})(?:/(?P<prefix>.*))?")


class S3Unavailable(PackyardError):
    """The object store could not be reached or failed."""

    code = "unreachable"


def parse_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` -> ("bucket", "some/prefix")."""
    match = _URL.fullmatch(url.strip())
    if not match:
        raise ConfigError(
            f"{url!r} is not an S3 URL", hint="write s3://bucket or s3://bucket/prefix"
        )
    return match["bucket"], (match["prefix"] or "").strip("/")


class S3ObjectStore:
    def __init__(self, url: str, *, settings: S3Settings, client: Any = None) -> None:
        self.bucket, self.prefix = parse_s3_url(url)
        self._url = f"s3://{self.bucket}" + (f"/{self.prefix}" if self.prefix else "")
        self._endpoint = settings.endpoint_url or "AWS"
        self._client = client if client is not None else _client(settings)

    @property
    def url(self) -> str:
        return self._url

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def get(self, key: str) -> bytes | None:
        try:
            response = self._client.get_object(Bucket=self.bucket, Key=self._key(key))
            data: bytes = response["Body"].read()
            return data
        except Exception as exc:
            if _error_code(exc) in {"NoSuchKey", "404", "NotFound"}:
                return None
            raise self._translate(exc, f"read {key}") from exc

    def put(
        self, key: str, body: BinaryIO, *, size: int, content_type: str, cache_control: str
    ) -> None:
        try:
            # upload_fileobj streams and switches to multipart uploads for large files.
            self._client.upload_fileobj(
                body,
                self.bucket,
                self._key(key),
                ExtraArgs={"ContentType": content_type, "CacheControl": cache_control},
            )
        except Exception as exc:
            raise self._translate(exc, f"upload {key} ({size} bytes)") from exc

    def delete(self, keys: Sequence[str]) -> None:
        keys = list(keys)
        for start in range(0, len(keys), 1000):  # the API's limit per request
            batch = [{"Key": self._key(k)} for k in keys[start : start + 1000]]
            try:
                response = self._client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True}
                )
            except Exception as exc:
                raise self._translate(exc, f"delete {len(batch)} objects") from exc
            errors = response.get("Errors") or []
            if errors:
                first = errors[0]
                raise S3Unavailable(
                    f"{self._url}: could not delete {len(errors)} objects, e.g. "
                    f"{first.get('Key')}: {first.get('Code')} {first.get('Message')}",
                    hint="check the credentials' s3:DeleteObject permission",
                )

    def close(self) -> None:
        close = getattr(self._client, "close", None)
        if close is not None:
            close()

    def _translate(self, exc: Exception, what: str) -> PackyardError:
        code = _error_code(exc)
        message = f"{self._url}: cannot {what}: {exc}"
        if code in {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403"}:
            return NotAuthorized(
                message,
                hint="check the S3 credentials ([publish.s3] or AWS_ACCESS_KEY_ID/"
                "AWS_SECRET_ACCESS_KEY) and their permissions on the bucket",
            )
        if code == "NoSuchBucket":
            return NotFound(message, hint=f"create the bucket {self.bucket!r} first")
        if type(exc).__name__ in {"NoCredentialsError", "PartialCredentialsError"}:
            return ConfigError(
                message,
                hint="set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or [publish.s3] "
                "access_key_id/secret_access_key",
            )
        return S3Unavailable(
            message, hint=f"is the S3 endpoint ({self._endpoint}) reachable? try again later"
        )


def _error_code(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""


def _client(settings: S3Settings) -> Any:
    import boto3
    from botocore.config import Config

    style = settings.addressing_style
    if style == "auto" and settings.endpoint_url:
        style = "path"  # MinIO and most self-hosted stores have no per-bucket host names
    config = Config(
        s3={"addressing_style": style},
        retries={"max_attempts": 5, "mode": "standard"},
        connect_timeout=10,
        read_timeout=60,
    )
    secret = settings.secret_access_key.get_secret_value() if settings.secret_access_key else None
    return boto3.session.Session().client(
        "s3",
        endpoint_url=settings.endpoint_url or None,
        region_name=settings.region or None,
        aws_access_key_id=settings.access_key_id or None,
        aws_secret_access_key=secret,
        config=config,
    )


def open_object_store(settings: S3Settings, url: str) -> S3ObjectStore:
    """The store for a push target URL with the configured endpoint and credentials."""
    return S3ObjectStore(url, settings=settings)
