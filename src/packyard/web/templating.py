"""The Jinja2 environment: templates, filters, and the frame every page shares."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from fastapi.templating import Jinja2Templates

from packyard import __version__
from packyard.services.icons import icon_url

__all__ = ["STATIC_DIR", "TEMPLATE_DIR", "templates"]

WEB_DIR = Path(__file__).resolve().parent
TEMPLATE_DIR = WEB_DIR / "templates"
STATIC_DIR = WEB_DIR / "static"


def _size(n: int | None) -> str:
    if n is None:
        return ""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else ""


def _iso(value: datetime | None) -> str:
    return value.isoformat(timespec="seconds") + "Z" if value else ""


def _short(sha: str | None) -> str:
    return (sha or "")[:12]


def _url_quote(value: str) -> str:
    return quote(value, safe="")


def _query(params: dict[str, Any], **changes: Any) -> str:
    """``params`` with ``changes`` applied, empty values dropped, as ``?a=1&b=2``."""
    merged = {**params, **changes}
    clean = {k: v for k, v in merged.items() if v not in (None, "", False)}
    return "?" + urlencode(clean) if clean else "?"


def _icon_src(package: Any) -> str:
    """The package's icon URL with a version, so a new upload shows at once despite caching."""
    sha = getattr(package, "icon_sha256", None)
    return f"{icon_url(package.name)}?v={sha[:12] if sha else 'auto'}"


templates = Jinja2Templates(directory=str(TEMPLATE_DIR))
templates.env.filters.update(size=_size, when=_when, iso=_iso, short=_short, q=_url_quote)
templates.env.globals.update(version=__version__, query=_query, icon_src=_icon_src)
templates.env.trim_blocks = True
templates.env.lstrip_blocks = True
