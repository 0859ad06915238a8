"""The DICOM gateway: DIMSE services (PS3.7) over the DICOM upper layer (PS3.8), a door
into the same service layer as DICOMweb."""
