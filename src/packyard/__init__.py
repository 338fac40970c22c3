"""Packyard: software packages from pinned source or CI upload to signed repositories and devices."""

__all__ = ["__version__"]

__version__ = "0.1.0"
