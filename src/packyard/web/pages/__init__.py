"""One module per feature, named like its service and API router."""
