"""Shared web plumbing: routing, JSON responses and errors."""
