"""api/schemas."""
