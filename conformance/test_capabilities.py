"""Retrieve Capabilities transaction: PS3.18 8.9 (OPTIONS) and the WADL description, Annex H."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import requests

from conformance.wire import media_type

WADL = "application/vnd.sun.wadl+xml"


def _local(element: ET.Element) -> str:
    return element.tag.rpartition("}")[2]


def test_service_root_describes_its_resources(base_url: str, http: requests.Session) -> None:
    """PS3.18 8.9 and Annex H: OPTIONS on the service's base URI answers 200 with a
    Capabilities Description; asked for as WADL, a WADL document whose resources include
    `studies`."""
    response = http.options(base_url, headers={"Accept": WADL}, allow_redirects=False)
    assert response.status_code == 200, (response.status_code, response.text[:300])
    assert media_type(response.headers.get("content-type", ""))[0] == WADL
    document = ET.fromstring(response.content)
    assert _local(document) == "application"
    paths = {resource.get("path", "").strip("/") for resource in document.iter()
             if _local(resource) == "resource"}
    assert "studies" in paths, sorted(paths)


def test_resource_answers_options(base_url: str, http: requests.Session) -> None:
    """PS3.18 8.9 and RFC 9110 9.3.7: OPTIONS on a resource of the service (/studies)
    answers 200 describing what it offers."""
    response = http.options(f"{base_url}/studies", allow_redirects=False)
    assert response.status_code == 200, (response.status_code, response.text[:300])
