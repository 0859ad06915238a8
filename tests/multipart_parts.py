"""Reading multipart/related responses in tests (RFC 2046 5.1), independently of the server's
own multipart code."""

import requests


def media_params(value: str) -> tuple[str, dict[str, str]]:
    """`type/subtype; a=b; c="d"` → ("type/subtype", {"a": "b", "c": "d"})."""
    name, *rest = value.split(";")
    params = {}
    for item in rest:
        key, _, val = item.strip().partition("=")
        params[key.lower()] = val.strip('"')
    return name.strip().lower(), params


def parse_multipart(response: requests.Response) -> list[tuple[dict[str, str], bytes]]:
    """(headers, body) of each part of a multipart/related response; header names lower-case."""
    media, params = media_params(response.headers["content-type"])
    assert media == "multipart/related", media
    pieces = response.content.split(b"--" + params["boundary"].encode())
    assert pieces[-1].startswith(b"--"), pieces[-1][:20]  # the close delimiter
    parts = []
    for piece in pieces[1:-1]:
        assert piece.startswith(b"\r\n") and piece.endswith(b"\r\n")
        head, _, body = piece[2:-2].partition(b"\r\n\r\n")
        headers = {}
        for line in head.decode("latin-1").split("\r\n"):
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        parts.append((headers, body))
    return parts
