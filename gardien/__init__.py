"""Gardien: a self-hosted GDPR compliance engine."""

__version__ = "0.1.0"
