"""A DICOMweb archive server (PS3.18 Store, Search, Retrieve, Delete)."""

__version__ = "0.1.0"
