"""DICOMweb load generator and peer comparison (`python -m benchmarks.load`, `.compare`)."""
