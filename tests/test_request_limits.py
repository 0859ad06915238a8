"""Requests past any size DICOMweb needs get 414 or 431 with the Google error body (and CORS
headers, so a viewer can read them), before any route runs; ordinary ones pass."""

import requests

from tests.conftest import LiveServer


def test_an_overlong_query_string_is_414(shared_server: LiveServer) -> None:
    long = requests.get(f"{shared_server.dicomweb}/studies",
                        params={"PatientName": "A" * 40_000},
                        headers={"Origin": "http://viewer.example"})
    assert long.status_code == 414, long.text
    assert long.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert "query string" in long.json()["error"]["message"]
    assert long.headers["Access-Control-Allow-Origin"] == "*"
    fine = requests.get(f"{shared_server.dicomweb}/studies", params={"PatientName": "A" * 8000})
    assert fine.status_code in (200, 204)


def test_too_many_or_too_large_header_fields_are_431(shared_server: LiveServer) -> None:
    url = f"{shared_server.dicomweb}/studies"
    large = requests.get(url, headers={"X-Padding": "A" * 70_000})
    many = requests.get(url, headers={f"X-Field-{i}": "1" for i in range(120)})
    for response in (large, many):
        assert response.status_code == 431, response.text
        assert response.json()["error"]["code"] == 431
    token_sized = requests.get(url, headers={"X-Forwarded-Token": "t" * 8000,
                                             **{f"X-Field-{i}": "1" for i in range(40)}})
    assert token_sized.status_code in (200, 204)
