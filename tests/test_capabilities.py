"""Retrieve Capabilities (PS3.18 8.9): OPTIONS on the service root and on each resource
describes what is served, generated from the same tables the server negotiates with."""

import xml.etree.ElementTree as ET

import pytest
import requests

from tests.conftest import LiveServer

WADL = "{http://wadl.dev.java.net/2009/02}"


def _options(url: str, accept: str | None = None) -> requests.Response:
    response = requests.options(url, headers={"Accept": accept} if accept else {})
    assert response.status_code == 200, response.text
    return response


@pytest.mark.parametrize("root", ["/dicomweb", "/dicomweb/",
                                  "/v1/projects/local/locations/local/datasets/default/"
                                  "dicomStores/default/dicomWeb"])
def test_the_service_root_describes_every_resource(live_server: LiveServer, root: str) -> None:
    response = _options(live_server.base + root)
    assert response.headers["content-type"].startswith("application/vnd.sun.wadl+xml")
    document = ET.fromstring(response.content)
    [resources] = document.findall(f"{WADL}resources")
    assert resources.get("base") == live_server.base + root.rstrip("/") + "/"
    paths = {r.get("path"): {m.get("name") for m in r.findall(f"{WADL}method")}
             for r in resources.findall(f"{WADL}resource")}
    assert paths["studies"] == {"GET", "POST"}
    assert paths["studies/{study}"] == {"GET", "POST", "DELETE"}
    assert "studies/{study}/series/{series}/instances/{instance}/frames/{frames}" in paths
    assert len(paths) == 22
    studies = next(r for r in resources if r.get("path") == "studies")
    search = next(m for m in studies if m.get("name") == "GET")
    media = {r.get("mediaType") for r in search.iter(f"{WADL}representation")}
    assert media == {"application/dicom+json", "application/json",
                     'multipart/related; type="application/dicom+xml"'}


def test_the_json_description_carries_the_profile(live_server: LiveServer) -> None:
    described = _options(f"{live_server.dicomweb}", "application/json").json()
    assert described["profile"] == "full"
    assert "1.2.840.10008.1.2" not in described["transferSyntaxes"]["instances"]
    assert "1.2.840.10008.1.2.4.50" in described["transferSyntaxes"]["instances"]
    assert described["search"]["limits"]["study"] == {"default": 1000, "maximum": 10000}
    assert {"single", "list", "wildcard", "range", "fuzzy"} == set(
        described["search"]["matching"])
    [store] = [r for r in described["resources"] if r["path"] == "/studies"]
    [post] = [m for m in store["methods"] if m["method"] == "POST"]
    assert post["transaction"] == "Store Instances"
    assert 'multipart/related; type="application/dicom+json"' in post["accepts"]


def test_a_resource_describes_itself(live_server: LiveServer) -> None:
    url = f"{live_server.dicomweb}/studies/1.2.3/series/4.5.6/metadata"
    described = _options(url, "application/json").json()
    assert [r["path"] for r in described["resources"]] == ["/studies/{study}/series/{series}"
                                                           "/metadata"]
    [get] = described["resources"][0]["methods"]
    assert get["transaction"] == "Retrieve Metadata"
    response = requests.delete(url)
    assert response.status_code == 405
    assert {m.strip() for m in response.headers["Allow"].split(",")} == {"GET", "HEAD",
                                                                         "OPTIONS"}
