"""How the web UI answers a refused request: an HTML page (or htmx fragment) with the same
code, message and hint the API would send, under the same HTTP status.

The status comes from ``packyard.http_status``, the table the API uses too.
"""

from __future__ import annotations

from packyard.http_status import STATUS_BY_CODE, status_for

__all__ = ["STATUS_BY_CODE", "status_for"]
