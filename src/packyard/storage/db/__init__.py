"""storage/db."""
