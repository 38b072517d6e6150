"""Hearth: real-time anonymous peer-support chat. See docs/architecture.md."""
