"""DICOM facts, each in one place, and Part 10 reading and writing (PS3.5, PS3.6, PS3.10)."""
