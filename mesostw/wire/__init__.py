"""Shared wire plumbing: one port for HTTP and Perspective Broker, JSON payloads over PB."""
