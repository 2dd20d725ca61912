"""Turning events into text and JSON that are safe to print."""
