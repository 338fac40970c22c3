"""storage/blobs."""
