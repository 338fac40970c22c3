"""Settings: sizes, precedence of flags, environment and file, validation, the default file."""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from pydantic import BaseModel

from packyard.config import (
    PipelineSettings,
    Settings,
    StageSettings,
    load_settings,
    parse_size,
    render_default_config,
)
from packyard.domain.auth import Role
from packyard.domain.errors import ConfigError

GiB = 1024**3


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No PACKYARD_* from the caller's shell, and no packyard-data/ in the working directory."""
    for key in list(os.environ):
        if key.startswith("PACKYARD_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    yield


def write_toml(path: Path, config: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(tomli_w.dumps(config))
    return path


# ---------------------------------------------------------------------------------- parse_size


@pytest.mark.parametrize(
    ("value", "size"),
    [
        (1073741824, GiB),
        ("0", 0),
        ("512", 512),
        ("512M", 512 * 1024**2),
        ("10G", 10 * GiB),
        ("10GiB", 10 * GiB),
        ("10GB", 10 * GiB),
        ("10g", 10 * GiB),
        ("1k", 1024),
        ("2T", 2 * 1024**4),
        (" 7 M ", 7 * 1024**2),
        ("100B", 100),
    ],
)
def test_parse_size(value: int | str, size: int) -> None:
    assert parse_size(value) == size


@pytest.mark.parametrize("value", ["", "G", "1.5G", "-1", "10X", "ten", "10 G B", "1P"])
def test_parse_size_refuses_what_is_not_a_size(value: str) -> None:
    with pytest.raises(ValueError, match="not a size"):
        parse_size(value)


# ---------------------------------------------------------------------------------- precedence


def test_defaults(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path / "data")

    assert settings.upload.max_size == 10 * GiB
    assert settings.upload.require_justification is True
    assert settings.retention.keep_failed == 5
    assert settings.default_pipeline == "default"
    assert list(settings.pipelines) == ["default"]
    assert (
        settings.resolved_database_url == f"sqlite:///{(tmp_path / 'data').resolve()}/packyard.db"
    )
    assert settings.resolved_blob_dir == tmp_path / "data" / "blobs"


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("0.0.0.0", "http://127.0.0.1:8123"),
        ("::", "http://[::1]:8123"),
        ("10.1.2.3", "http://10.1.2.3:8123"),
        ("packages.lan", "http://packages.lan:8123"),
    ],
)
def test_client_base_url_never_names_a_wildcard_address(
    tmp_path: Path, host: str, expected: str
) -> None:
    settings = load_settings(data_dir=tmp_path, host=host, port=8123)
    assert settings.client_base_url() == expected
    assert settings.client_base_url("https://proxy.example/") == "https://proxy.example"
    configured = load_settings(
        data_dir=tmp_path, host=host, port=8123, publish={"base_url": "https://repo.example/"}
    )
    assert configured.client_base_url("https://proxy.example/") == "https://repo.example"


@pytest.mark.parametrize(
    "bad", ["packages.example.com", "ftp://x.example", "javascript:alert(1)", "https://x/?q=1"]
)
def test_publish_base_url_must_be_an_http_url(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ConfigError, match="base_url"):
        load_settings(data_dir=tmp_path, publish={"base_url": bad})


def test_environment_overrides_nested_settings(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PACKYARD_UPLOAD__MAX_SIZE", "1G")
    monkeypatch.setenv("PACKYARD_RETENTION__KEEP_FAILED", "2")

    settings = load_settings(data_dir=tmp_path)

    assert settings.upload.max_size == GiB
    assert settings.retention.keep_failed == 2
    assert settings.upload.require_justification is True


def test_config_file_in_the_data_dir_is_read(tmp_path: Path) -> None:
    write_toml(tmp_path / "packyard.toml", {"port": 9001, "upload": {"max_size": "3M"}})

    settings = load_settings(data_dir=tmp_path)

    assert settings.port == 9001
    assert settings.upload.max_size == 3 * 1024**2


def test_environment_wins_over_the_file_key_by_key(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    write_toml(
        tmp_path / "packyard.toml",
        {"port": 9001, "upload": {"max_size": "1M", "require_justification": False}},
    )
    monkeypatch.setenv("PACKYARD_UPLOAD__MAX_SIZE", "2M")

    settings = load_settings(data_dir=tmp_path)

    assert settings.upload.max_size == 2 * 1024**2
    # The rest of [upload] still comes from the file.
    assert settings.upload.require_justification is False
    assert settings.port == 9001


def test_flags_win_over_environment_and_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    write_toml(tmp_path / "packyard.toml", {"port": 9001, "host": "0.0.0.0"})
    monkeypatch.setenv("PACKYARD_PORT", "9002")

    settings = load_settings(data_dir=tmp_path, port=9003, host=None)

    assert settings.port == 9003
    assert settings.host == "0.0.0.0"  # None flags are "not given"


def test_config_file_named_by_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = write_toml(tmp_path / "etc" / "packyard.toml", {"log_level": "debug"})
    write_toml(tmp_path / "data" / "packyard.toml", {"log_level": "error"})
    monkeypatch.setenv("PACKYARD_CONFIG", str(path))

    assert load_settings(data_dir=tmp_path / "data").log_level == "debug"


def test_explicit_config_file(tmp_path: Path) -> None:
    path = write_toml(tmp_path / "custom.toml", {"log_format": "text"})

    assert load_settings(config_file=path, data_dir=tmp_path).log_format == "text"


def test_missing_config_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist") as info:
        load_settings(config_file=tmp_path / "nope.toml")

    assert info.value.hint is not None and "packyard init" in info.value.hint


def test_invalid_toml_is_an_error_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "packyard.toml"
    path.write_text("[upload\nmax_size = 1\n")

    with pytest.raises(ConfigError, match="is not valid TOML") as info:
        load_settings(data_dir=tmp_path)

    assert str(path) in info.value.message


# ---------------------------------------------------------------------------------- validation


def _config_error(tmp_path: Path, config: dict[str, Any]) -> ConfigError:
    write_toml(tmp_path / "packyard.toml", config)
    with pytest.raises(ConfigError) as info:
        load_settings(data_dir=tmp_path)
    assert info.value.message.startswith("invalid configuration: ")
    assert info.value.hint == f"check {tmp_path / 'packyard.toml'}"
    return info.value


def test_package_pipeline_naming_an_unknown_pipeline(tmp_path: Path) -> None:
    error = _config_error(tmp_path, {"package_pipelines": {"notes-app": "short"}})

    assert "package_pipelines.notes-app names unknown pipeline 'short'" in error.message


def test_default_pipeline_must_be_defined(tmp_path: Path) -> None:
    error = _config_error(
        tmp_path,
        {
            "pipelines": {"short": {"stages": [{"name": "dev"}, {"name": "prod"}]}},
        },
    )

    assert "default_pipeline 'default' is not defined in [pipelines]" in error.message


def test_stage_requiring_a_later_stage(tmp_path: Path) -> None:
    error = _config_error(
        tmp_path,
        {
            "pipelines": {
                "default": {
                    "stages": [
                        {"name": "dev", "requires": ["prod"]},
                        {"name": "prod"},
                    ]
                }
            }
        },
    )

    assert (
        "stage 'dev' of pipeline 'default' requires 'prod', which is not an earlier stage"
        in error.message
    )


def test_pipeline_without_stages(tmp_path: Path) -> None:
    error = _config_error(tmp_path, {"pipelines": {"default": {"stages": []}}})

    assert "pipeline 'default' has no stages" in error.message


def test_unknown_promote_role(tmp_path: Path) -> None:
    error = _config_error(
        tmp_path,
        {
            "pipelines": {
                "default": {
                    "stages": [
                        {"name": "new", "promote_roles": ["superuser"]},
                    ]
                }
            }
        },
    )

    assert "promote_roles" in error.message


def test_change_control_url_needs_an_id_placeholder(tmp_path: Path) -> None:
    error = _config_error(tmp_path, {"change_control": {"url": "https://tickets/api/changes"}})

    assert "change_control.url must contain {id}" in error.message


def test_unknown_setting_is_refused(tmp_path: Path) -> None:
    error = _config_error(tmp_path, {"uplaod": {"max_size": "1G"}})

    assert "uplaod" in error.message


def test_negative_retention_is_refused(tmp_path: Path) -> None:
    error = _config_error(tmp_path, {"retention": {"keep_failed": -1}})

    assert "keep_failed" in error.message


def test_configured_pipelines_become_domain_pipelines(tmp_path: Path) -> None:
    settings = load_settings(
        data_dir=tmp_path,
        pipelines={
            "default": {
                "stages": [
                    {"name": "new"},
                    {"name": "prod", "change_control": True, "promote_roles": ["admin"]},
                ]
            },
            "short": {"stages": [{"name": "dev"}, {"name": "prod", "requires": ["dev"]}]},
        },
        package_pipelines={"notes-app": "short"},
    )

    built = settings.build_pipelines()

    assert built["default"].stage_names == ("new", "prod")
    assert built["default"].stage("prod").change_control is True
    assert built["default"].stage("prod").promote_roles == frozenset({Role.ADMIN})
    assert built["short"].first.name == "dev"
    assert built["short"].stage("prod").requires == ("dev",)


# ------------------------------------------------------------------------ the default config file


def test_default_config_parses_into_the_default_settings(tmp_path: Path) -> None:
    text = render_default_config(data_dir=tmp_path / "data")

    parsed = Settings(**tomllib.loads(text))

    assert parsed.model_dump() == Settings(data_dir=tmp_path / "data").model_dump()


def test_default_config_written_to_the_data_dir_loads(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "packyard.toml").write_text(render_default_config(data_dir=data_dir))

    settings = load_settings(data_dir=data_dir)

    assert settings.data_dir == data_dir
    assert settings.upload.max_size == 10 * GiB


def _field_names(model: type[BaseModel], prefix: str = "") -> list[str]:
    names: list[str] = []
    for name, info in model.model_fields.items():
        names.append(f"{prefix}{name}")
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            names.extend(_field_names(annotation, prefix=f"{name}."))
    return names


def test_default_config_mentions_every_setting() -> None:
    text = render_default_config(data_dir=Path("/srv/packyard"))
    names = _field_names(Settings)
    # Pipelines are a mapping of models, so their fields are not reached by the walk above.
    names += [f"pipelines.*.{n}" for n in PipelineSettings.model_fields]
    names += [f"pipelines.*.stages.{n}" for n in StageSettings.model_fields]

    missing = [n for n in names if not re.search(rf"\b{re.escape(n.rsplit('.', 1)[-1])}\b", text)]

    assert missing == []
    assert {
        "upload.max_size",
        "retention.keep_failed",
        "change_control.token",
        "pipelines.*.stages.promote_roles",
    } <= set(names)


_TWO_PIPELINES = {
    "default": {"stages": [{"name": "ci"}, {"name": "prod"}]},
    "bookworm": {
        "stages": [{"name": "ci"}, {"name": "prod"}],
        "apt": {
            "suite_template": "bookworm-{stage}",
            "codename_template": "bookworm",
            "component": "contrib",
            "architectures": ["arm64"],
        },
    },
}


def test_apt_distributions_default_to_one_suite_per_stage(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path)
    [dist] = settings.apt_distributions("prod")
    assert (dist.suite, dist.codename, dist.component) == ("prod", "prod", "main")
    assert dist.architectures == ("amd64", "arm64")
    assert settings.apt_suites()["stage"] == "stage"


def test_a_pipeline_gets_its_own_apt_distribution(tmp_path: Path) -> None:
    write_toml(tmp_path / "packyard.toml", {"pipelines": _TWO_PIPELINES})
    settings = load_settings(data_dir=tmp_path)
    default, bookworm = settings.apt_distributions("prod")
    assert (default.suite, default.pipelines) == ("prod", ("default",))
    assert (bookworm.suite, bookworm.codename, bookworm.component) == (
        "bookworm-prod",
        "bookworm",
        "contrib",
    )
    assert bookworm.architectures == ("arm64",)
    assert settings.apt_suites() == {
        "ci": "ci",
        "bookworm-ci": "ci",
        "prod": "prod",
        "bookworm-prod": "prod",
    }


def test_pipelines_sharing_a_suite_must_agree(tmp_path: Path) -> None:
    pipelines = {
        **_TWO_PIPELINES,
        "bookworm": {**_TWO_PIPELINES["bookworm"], "apt": {"component": "contrib"}},
    }
    error = _config_error(tmp_path, {"pipelines": pipelines})

    assert "pipelines 'default' and 'bookworm' both publish apt suite 'ci'" in error.message


def test_an_apt_suite_cannot_serve_two_stages(tmp_path: Path) -> None:
    error = _config_error(tmp_path, {"publish": {"apt": {"suite_template": "stable"}}})

    assert "apt suite 'stable' would serve both stage 'new' and 'ci'" in error.message


def test_an_apt_codename_must_be_one_word(tmp_path: Path) -> None:
    error = _config_error(tmp_path, {"publish": {"apt": {"codename_template": "my distro"}}})

    assert "apt codename 'my distro' for stage 'new' must be a non-empty word" in error.message
