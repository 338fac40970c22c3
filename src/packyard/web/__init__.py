"""The web UI: server-rendered pages (Jinja2) with htmx for partial updates.

Pages are thin adapters over the same services the API uses; they never import ``api``.
"""
