"""Byte order of binary values (PS3.5 7.3): the size of the words a big endian value's bytes
are swapped within to make it little endian."""

import numpy as np

# Bytes per word of each binary VR (PS3.5 Table 6.2-1); OB, UN and text need no swapping.
WORD_SIZES = {"OW": 2, "OF": 4, "OL": 4, "OD": 8, "OV": 8, "US": 2, "SS": 2, "AT": 2,
              "UL": 4, "SL": 4, "FL": 4, "FD": 8, "SV": 8, "UV": 8}


def swapped(data: bytes, word: int) -> bytes:
    """`data` with the bytes of each `word`-byte word reversed (its length a multiple)."""
    if word <= 1:
        return data
    return np.frombuffer(data, f">u{word}").astype(f"<u{word}").tobytes()
