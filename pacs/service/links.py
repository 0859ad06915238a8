"""The URLs of a store's DICOMweb resources (PS3.18 10.4, 8.7.3.1), given the root a client
reached the store at; answers carry them as RetrieveURL and BulkDataURI values."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Links:
    """URLs under `root`, e.g. `https://host/dicomweb`."""

    root: str

    def study(self, study: str) -> str:
        return f"{self.root}/studies/{study}"

    def series(self, study: str, series: str) -> str:
        return f"{self.root}/studies/{study}/series/{series}"

    def instance(self, study: str, series: str, instance: str) -> str:
        return f"{self.root}/studies/{study}/series/{series}/instances/{instance}"

    def bulk_data(self, study: str, series: str, instance: str) -> str:
        """The prefix of the instance's BulkDataURIs; each ends in its attribute path."""
        return f"{self.instance(study, series, instance)}/bulkdata/"

    def with_bulk_data_uris(self, metadata: bytes, study: str, series: str,
                            instance: str) -> bytes:
        """Stored DICOM JSON whose BulkDataURIs are attribute paths, with URLs instead."""
        prefix = f'"BulkDataURI":"{self.root}/studies/{study}/series/{series}/instances/' \
                 f'{instance}/bulkdata/'
        return metadata.replace(b'"BulkDataURI":"', prefix.encode())
