"""Slice analyses: upload, result pages, history and their API."""
