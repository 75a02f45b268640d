"""Tabpilot: lightweight AutoML for tabular data."""

__version__ = "0.1.0"
