"""Settings: command-line flags > ``PACKYARD_*`` environment variables > the TOML config file
(``packyard.toml`` in the data directory, or ``PACKYARD_CONFIG``) > defaults.

Nested settings use ``__`` in environment variables, e.g. ``PACKYARD_UPLOAD__MAX_SIZE=1G``.
``packyard init`` writes a commented file listing every setting with its default; keep
``render_default_config`` in step with the models below (a test checks that every field is
listed).
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from packyard.domain.auth import Role
from packyard.domain.errors import ConfigError
from packyard.domain.pipelines import DEFAULT_PIPELINE, Pipeline, Stage

__all__ = ["Settings", "load_settings", "parse_size", "render_default_config"]

_SIZE_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


def parse_size(value: int | str) -> int:
    """Parse ``1073741824``, ``"512M"``, ``"10G"`` or ``"10GiB"`` into bytes."""
    if isinstance(value, int):
        return value
    match = re.fullmatch(r"\s*(\d+)\s*([KMGT]?)(?:i?B)?\s*", value, flags=re.IGNORECASE)
    if not match:
        raise ValueError(f"not a size: {value!r} (use e.g. 500M or 10G)")
    return int(match.group(1)) * _SIZE_UNITS[match.group(2).upper()]


class StageSettings(BaseModel):
    name: str
    requires: list[str] | None = None
    change_control: bool = False
    promote_roles: list[Role] = Field(default_factory=lambda: [Role.ADMIN, Role.MAINTAINER])


class PipelineAptSettings(BaseModel):
    """apt distribution of one pipeline's packages; unset values come from [publish.apt]."""

    # dists/<suite>; "{stage}" is replaced, e.g. "bookworm-{stage}".
    suite_template: str | None = None
    # The Release's Codename; "{stage}" is replaced. Default: the suite.
    codename_template: str | None = None
    component: str | None = None
    architectures: list[str] | None = None


class PipelineSettings(BaseModel):
    stages: list[StageSettings]
    apt: PipelineAptSettings = Field(default_factory=PipelineAptSettings)


@dataclass(frozen=True, kw_only=True)
class AptDistribution:
    """One ``dists/<suite>/`` of a stage's apt channel and the pipelines publishing into it."""

    suite: str
    codename: str
    component: str
    architectures: tuple[str, ...]
    pipelines: tuple[str, ...]


class UploadSettings(BaseModel):
    max_size: int = 10 * 1024**3
    require_justification: bool = True
    require_provenance: bool = True

    @field_validator("max_size", mode="before")
    @classmethod
    def _size(cls, value: int | str) -> int:
        return parse_size(value)


class RetentionSettings(BaseModel):
    keep_failed: int = Field(default=5, ge=0)
    keep_deprecated: int = Field(default=5, ge=0)
    tmp_max_age_hours: int = Field(default=24, ge=1)


class ChangeControlSettings(BaseModel):
    url: str | None = None
    token: SecretStr | None = None
    approved_field: str = "approved"
    timeout: float = 10.0

    @field_validator("url")
    @classmethod
    def _template(cls, value: str | None) -> str | None:
        if value and "{id}" not in value:
            raise ValueError(
                "change_control.url must contain {id}, e.g. https://tickets/api/changes/{id}"
            )
        return value or None


class AptSettings(BaseModel):
    origin: str = "Packyard"
    label: str = "Packyard"
    component: str = "main"
    architectures: list[str] = Field(default_factory=lambda: ["amd64", "arm64"])
    # dists/<suite>: the stage name by default; "{stage}" is replaced, e.g. "bookworm-{stage}".
    suite_template: str = "{stage}"
    # The Release's Codename; "{stage}" is replaced. Default: the suite.
    codename_template: str | None = None
    valid_days: int = Field(default=0, ge=0)  # 0: no Valid-Until


class PacmanSettings(BaseModel):
    # Repository name in pacman.conf ([name]); "{stage}" is replaced.
    repo_template: str = "packyard-{stage}"
    architectures: list[str] = Field(default_factory=lambda: ["x86_64", "aarch64"])


class MunkiSettings(BaseModel):
    # Extra Munki catalog and manifest names, each serving one stage's catalog and manifest
    # (every stage also has both under its own name): alias -> stage.
    catalogs: dict[str, str] = Field(
        default_factory=lambda: {"testing": "dev", "production": "prod"}
    )


class ChannelOptions(BaseModel):
    # Keep only the newest N versions per package in the channel (0 = all). Packrat's "only
    # latest", which Packrat stored but never applied.
    keep_latest: int = Field(default=0, ge=0)


class S3Target(BaseModel):
    # Where to push: "s3://bucket/prefix"; objects go to <prefix>/repos/... (the /repos layout).
    url: str
    # Channels pushed to it after each of their publications: "apt/prod", "apt/*", "*/prod".
    channels: list[str] = Field(default_factory=lambda: ["*"])

    @field_validator("url")
    @classmethod
    def _s3_url(cls, value: str) -> str:
        if not re.fullmatch(r"s3://[a-z0-9][a-z0-9.\-]{1,62}(/[^\s]*)?", value):
            raise ValueError(f"push target {value!r} is not an s3://bucket[/prefix] URL")
        return value


class S3Settings(BaseModel):
    # S3-compatible endpoint (MinIO, Ceph RGW, ...); empty means AWS.
    endpoint_url: str | None = None
    region: str | None = None
    # Credentials; empty means boto3's usual chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY,
    # ~/.aws, instance roles). Prefer the environment over this file.
    access_key_id: str | None = None
    secret_access_key: SecretStr | None = None
    # "path" (bucket in the URL path), "virtual" (bucket in the host name) or "auto" (path
    # when endpoint_url is set, else boto3's choice).
    addressing_style: str = Field(default="auto", pattern="^(auto|path|virtual)$")
    # Push targets updated after every publication of their channels.
    targets: list[S3Target] = Field(default_factory=list)


def check_base_url(value: str) -> str:
    """An http(s) URL without query or fragment, no trailing slash; ValueError saying why."""
    parsed = urlsplit(value.strip())
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ValueError(
            f"{value!r} is not an http(s):// URL with a host (e.g. https://packages.example.com)"
        )
    if parsed.query or parsed.fragment or any(c.isspace() for c in value.strip()):
        raise ValueError(f"{value!r} must not carry a query, a fragment or spaces")
    return value.strip().rstrip("/")


class PublishSettings(BaseModel):
    # Public URL clients use (in `packyard keys show` and the web UI); default: the URL the
    # request came in on.
    base_url: str | None = None

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str | None) -> str | None:
        return None if value is None else check_base_url(value)

    # Snapshots kept per channel for rollback (the current one included).
    keep_snapshots: int = Field(default=5, ge=1)
    # Publish automatically after promotions, demotions, failures and deprecations.
    auto: bool = True
    # Anonymous clients may read /repos (apt, dnf, pacman clients); false requires a token
    # (HTTP basic auth, password = token).
    public: bool = True
    # Index files are built from compressed blocks of about this many entries, cached, so a
    # publish recompresses only the blocks that changed (docs/publishing.md). Tuning only.
    block_entries: int = Field(default=64, ge=1, le=100_000)
    # Megabytes of recently used index blocks kept in memory besides the on-disk cache
    # (0: none). A channel of 10,000 packages uses about 10 (apt) or 30 (dnf).
    block_cache_memory_mb: int = Field(default=128, ge=0, le=65_536)
    # Seconds between checks (in `serve` with workers, and `worker`) for channels to sign
    # again: the signing keys changed (a key's transition ended) or half of apt's Valid-Until
    # has passed. 0: never (then publish on time yourself).
    housekeeping_seconds: int = Field(default=300, ge=0)
    apt: AptSettings = Field(default_factory=AptSettings)
    pacman: PacmanSettings = Field(default_factory=PacmanSettings)
    munki: MunkiSettings = Field(default_factory=MunkiSettings)
    # Per channel ("<format>/<stage>", e.g. "apt/prod") or per format ("apt") options.
    channels: dict[str, ChannelOptions] = Field(default_factory=dict)
    # Pushing publications to S3-compatible object stores.
    s3: S3Settings = Field(default_factory=S3Settings)

    def options_for(self, fmt: str, stage: str) -> ChannelOptions:
        return self.channels.get(f"{fmt}/{stage}") or self.channels.get(fmt) or ChannelOptions()


class JobSettings(BaseModel):
    # "sqlite" (embedded, jobs.db in the data dir) or a redis URL ("redis://host:6379/0").
    backend: str = "sqlite"
    # Worker threads inside `packyard serve`; 0 = run no workers in serve (use `packyard worker`).
    workers: int = Field(default=2, ge=0)


def _default_pipelines() -> dict[str, PipelineSettings]:
    return {
        DEFAULT_PIPELINE.name: PipelineSettings(
            stages=[
                StageSettings(name=s.name, change_control=s.change_control)
                for s in DEFAULT_PIPELINE.stages
            ]
        )
    }


class Settings(BaseSettings):
    """Every Packyard setting. See ``render_default_config`` for the documented file."""

    model_config = SettingsConfigDict(
        env_prefix="PACKYARD_", env_nested_delimiter="__", extra="forbid"
    )

    data_dir: Path = Path("packyard-data")
    host: str = "127.0.0.1"
    port: int = 8000
    database_url: str | None = None
    blob_dir: Path | None = None
    log_level: str = "info"
    log_format: str = "json"
    upload: UploadSettings = Field(default_factory=UploadSettings)
    retention: RetentionSettings = Field(default_factory=RetentionSettings)
    change_control: ChangeControlSettings = Field(default_factory=ChangeControlSettings)
    publish: PublishSettings = Field(default_factory=PublishSettings)
    jobs: JobSettings = Field(default_factory=JobSettings)
    default_pipeline: str = DEFAULT_PIPELINE.name
    pipelines: dict[str, PipelineSettings] = Field(default_factory=_default_pipelines)
    package_pipelines: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check_pipelines(self) -> Settings:
        built = self.build_pipelines()
        if self.default_pipeline not in built:
            raise ValueError(
                f"default_pipeline {self.default_pipeline!r} is not defined in [pipelines]"
            )
        for package, name in self.package_pipelines.items():
            if name not in built:
                raise ValueError(f"package_pipelines.{package} names unknown pipeline {name!r}")
        self.apt_suites()  # raises on conflicting distributions
        return self

    def apt_suites(self) -> dict[str, str]:
        """Every apt suite (``dists/<suite>/``) -> the stage it publishes.

        Raises:
            ValueError: one suite would serve two stages (a suite_template without
                "{stage}"), or apt_distributions refuses a stage.
        """
        out: dict[str, str] = {}
        for stage in self.stage_names():
            for dist in self.apt_distributions(stage):
                other = out.setdefault(dist.suite, stage)
                if other != stage:
                    raise ValueError(
                        f"apt suite {dist.suite!r} would serve both stage {other!r} and "
                        f"{stage!r}: put {{stage}} in its suite_template"
                    )
        return out

    def apt_distributions(self, stage: str) -> list[AptDistribution]:
        """The apt distributions (``dists/<suite>/``) of ``stage``'s channel: one per distinct
        suite among the pipelines having the stage, in pipeline order (the default pipeline's
        first). Pipelines resolving to the same suite share it and must agree on its codename,
        component and architectures.

        Raises:
            ValueError: two pipelines give one suite different settings, or a value is empty.
        """
        apt = self.publish.apt
        names = sorted(self.pipelines, key=lambda n: n != self.default_pipeline)
        out: dict[str, AptDistribution] = {}
        for name in names:
            spec = self.pipelines[name]
            if stage not in [s.name for s in spec.stages]:
                continue
            own = spec.apt
            suite = (own.suite_template or apt.suite_template).replace("{stage}", stage)
            codename_template = own.codename_template or apt.codename_template
            codename = codename_template.replace("{stage}", stage) if codename_template else suite
            component = own.component or apt.component
            architectures = tuple(own.architectures or apt.architectures)
            for what, value in (("suite", suite), ("codename", codename), ("component", component)):
                if not value.strip() or any(c.isspace() or c == "/" for c in value):
                    raise ValueError(
                        f"pipeline {name!r}: apt {what} {value!r} for stage {stage!r} must be a "
                        "non-empty word without spaces or slashes"
                    )
            if not architectures:
                raise ValueError(f"pipeline {name!r}: apt architectures must not be empty")
            found = out.get(suite)
            if found is None:
                out[suite] = AptDistribution(
                    suite=suite,
                    codename=codename,
                    component=component,
                    architectures=architectures,
                    pipelines=(name,),
                )
                continue
            if (found.codename, found.component, found.architectures) != (
                codename,
                component,
                architectures,
            ):
                raise ValueError(
                    f"pipelines {found.pipelines[0]!r} and {name!r} both publish apt suite "
                    f"{suite!r} for stage {stage!r} with different codename, component or "
                    "architectures: give one of them its own [pipelines.<name>.apt] "
                    "suite_template"
                )
            out[suite] = AptDistribution(
                suite=suite,
                codename=codename,
                component=component,
                architectures=architectures,
                pipelines=(*found.pipelines, name),
            )
        return list(out.values())

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir.resolve() / 'packyard.db'}"

    @property
    def resolved_blob_dir(self) -> Path:
        return self.blob_dir or self.data_dir / "blobs"

    def client_base_url(self, request_base: str | None = None) -> str:
        """The URL clients reach this server at: ``publish.base_url``, else the one the request
        came in on (what the user typed, through any proxy that keeps the Host header), else
        ``http://host:port`` (a wildcard bind address as the loopback one)."""
        if self.publish.base_url:
            return self.publish.base_url
        if request_base:
            return request_base.rstrip("/")
        loopback = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}  # noqa: S104
        host = loopback.get(self.host, self.host)
        return f"http://{f'[{host}]' if ':' in host else host}:{self.port}"

    def stage_names(self) -> list[str]:
        """Every stage of every pipeline, in first-seen pipeline order."""
        seen: dict[str, None] = {}
        for pipeline in self.build_pipelines().values():
            for stage in pipeline.stage_names:
                seen.setdefault(stage)
        return list(seen)

    def build_pipelines(self) -> dict[str, Pipeline]:
        """Turn the configured pipelines into domain values (validating them)."""
        out: dict[str, Pipeline] = {}
        for name, spec in self.pipelines.items():
            try:
                out[name] = Pipeline(
                    name=name,
                    stages=tuple(
                        Stage(
                            name=s.name,
                            requires=tuple(s.requires) if s.requires is not None else None,
                            change_control=s.change_control,
                            promote_roles=frozenset(s.promote_roles),
                        )
                        for s in spec.stages
                    ),
                )
            except ConfigError as exc:
                raise ValueError(str(exc)) from exc
        return out

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        path = _CONFIG_FILE.get("path")
        if path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)


# The TOML source's path is only known at load time; load_settings sets it for the
# duration of one construction (settings are built once per process, so this is not racy).
_CONFIG_FILE: dict[str, Path | None] = {"path": None}


def load_settings(*, config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build settings from flags (``overrides``, None values ignored), env and the config file.

    The config file is ``config_file``, else ``$PACKYARD_CONFIG``, else ``packyard.toml`` in
    the data directory when it exists.
    """
    overrides = {k: v for k, v in overrides.items() if v is not None}
    path = config_file or (
        Path(os.environ["PACKYARD_CONFIG"]) if os.environ.get("PACKYARD_CONFIG") else None
    )
    if path is None:
        data_dir = Path(
            overrides.get("data_dir") or os.environ.get("PACKYARD_DATA_DIR") or "packyard-data"
        )
        candidate = data_dir / "packyard.toml"
        path = candidate if candidate.is_file() else None
    elif not path.is_file():
        raise ConfigError(
            f"config file {path} does not exist", hint="run `packyard init` to write one"
        )
    if path is not None:
        try:
            tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(
                f"config file {path} is not valid TOML: {exc}", hint="fix the line named above"
            ) from exc
    _CONFIG_FILE["path"] = path
    try:
        return Settings(**overrides)
    except ValueError as exc:
        raise ConfigError(
            f"invalid configuration: {exc}",
            hint=f"check {path or 'your PACKYARD_* environment variables'}",
        ) from exc
    finally:
        _CONFIG_FILE["path"] = None


def render_default_config(*, data_dir: Path) -> str:
    """The commented configuration file ``packyard init`` writes."""
    return f'''# Packyard configuration. Every setting is listed with its default.
# Precedence: command-line flags > PACKYARD_* environment variables > this file > defaults.
# Nested keys map to env vars with "__", e.g. [upload] max_size -> PACKYARD_UPLOAD__MAX_SIZE.

# Where the database (SQLite), blobs and keys live.
data_dir = "{data_dir}"
# Address `packyard serve` listens on.
host = "127.0.0.1"
port = 8000
# SQLAlchemy URL; empty means SQLite in the data dir. At scale:
# "postgresql+psycopg://packyard:secret@db.example/packyard"
# database_url = ""
# Blob store directory; empty means <data_dir>/blobs.
# blob_dir = ""
# Logging: level (debug, info, warning, error) and format (json or text).
log_level = "info"
log_format = "json"
# Pipeline used by packages not named in [package_pipelines].
default_pipeline = "default"

[upload]
# Largest accepted upload; accepts bytes or K/M/G/T suffixes.
max_size = "10G"
# Every upload must say why it exists and where it came from (Packrat's rule).
require_justification = true
require_provenance = true

[retention]
# `packyard gc` keeps the newest N failed and N deprecated artifacts per package.
keep_failed = 5
keep_deprecated = 5
# Unfinished uploads older than this are removed by `packyard gc`.
tmp_max_age_hours = 24

[change_control]
# When set, change-control ids are checked with GET <url with {{id}} replaced>; the ticket
# system must answer 2xx with a JSON object whose `approved_field` is true.
# url = "https://tickets.example/api/changes/{{id}}"
# token = ""   # sent as "Authorization: Bearer <token>"; prefer PACKYARD_CHANGE_CONTROL__TOKEN
approved_field = "approved"
timeout = 10.0

[publish]
# URL clients reach this server at (for the client config lines); default: the URL the
# request came in on (keys show through a proxy that keeps the Host header names the proxy).
# base_url = "https://packages.example.com"
# Snapshots kept per channel for `packyard publications rollback`.
keep_snapshots = 5
# Republish affected channels in the background after every stage change.
auto = true
# Anonymous read access to /repos; false requires a token as HTTP basic auth password.
public = true
# Index files are built from cached, compressed blocks of about this many entries (tuning).
block_entries = 64
# Megabytes of recently used index blocks kept in memory as well (0: disk cache only).
block_cache_memory_mb = 128
# Seconds between checks for channels to sign again (a key's transition ended, or half of
# apt's Valid-Until passed); 0: never.
housekeeping_seconds = 300

[publish.apt]
origin = "Packyard"
label = "Packyard"
component = "main"
architectures = ["amd64", "arm64"]
# Codename in Release ("{{stage}}" is replaced); default: the suite.
# codename_template = "bookworm"
# dists/<suite>; e.g. "bookworm-{{stage}}" for distro-specific suites.
suite_template = "{{stage}}"
# Days until Release files expire (Valid-Until); 0 for none.
valid_days = 0

[publish.pacman]
# [repo] name in pacman.conf.
repo_template = "packyard-{{stage}}"
architectures = ["x86_64", "aarch64"]

[publish.munki]
# Every stage has a catalog and a manifest named after it; these extra names (alias = stage)
# serve a stage's catalog and manifest too, so Munki clients can use the usual "testing" and
# "production" (as ClientIdentifier).
catalogs = {{ testing = "dev", production = "prod" }}

# Per channel ("apt/prod") or per format ("apt") options:
# [publish.channels."apt/prod"]
# keep_latest = 2     # only the newest N versions of each package (0 = all)

[publish.s3]
# Pushing publications to S3-compatible stores (`packyard publish --to s3://bucket/prefix`,
# and the targets below after every publication). Endpoint for MinIO, Ceph RGW...; empty: AWS.
# endpoint_url = "https://minio.example:9000"
# region = "eu-central-1"
# Credentials; empty: boto3's chain (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, ~/.aws, roles).
# access_key_id = ""
# secret_access_key = ""   # prefer PACKYARD_PUBLISH__S3__SECRET_ACCESS_KEY or AWS_* variables
# "path", "virtual" or "auto" (path when endpoint_url is set).
addressing_style = "auto"
# Push targets: objects go to <prefix>/repos/... (the same layout as /repos), so clients can
# use http(s)://<bucket host>/<prefix> as their base URL. Channels: "apt/prod", "apt/*", "*/prod".
# None by default (targets = []); add one table per target:
# [[publish.s3.targets]]
# url = "s3://packages-bucket/packyard"
# channels = ["apt/prod", "dnf/prod"]

[jobs]
# Background jobs (publishing): "sqlite" (embedded) or "redis://host:6379/0".
backend = "sqlite"
# Worker threads inside `packyard serve` (0: run `packyard worker` processes instead).
workers = 2

# Pipelines: ordered stages. `requires` defaults to the previous stage;
# `change_control = true` asks for a change-control id; `promote_roles` defaults to
# ["admin", "maintainer"].
[pipelines.default]
stages = [
  {{ name = "new" }},
  {{ name = "ci" }},
  {{ name = "dev" }},
  {{ name = "stage" }},
  {{ name = "prod", change_control = true }},
]

# A short pipeline like PkgBot's dev -> prod:
# [pipelines.short]
# stages = [{{ name = "dev" }}, {{ name = "prod", change_control = true }}]

# A pipeline's debs can get their own apt distribution (unset values come from
# [publish.apt]), e.g. dists/bookworm-prod/ with Codename bookworm:
# [pipelines.embedded]
# stages = [{{ name = "ci" }}, {{ name = "prod", change_control = true }}]
# [pipelines.embedded.apt]
# suite_template = "bookworm-{{stage}}"
# codename_template = "bookworm"
# component = "main"
# architectures = ["arm64"]

[package_pipelines]
# "notes-app" = "short"
'''
