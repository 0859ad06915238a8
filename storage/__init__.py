"""Blob stores and the instance index; never imports pacs."""
