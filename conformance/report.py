"""Run the conformance suite against several servers and print one Markdown table.

    python -m conformance.report ours=http://127.0.0.1:8080/dicomweb \\
        orthanc=http://127.0.0.1:18042/dicom-web

Each server gets its own pytest process; other options (`--header`, `-m "not optional"`) go to
every run. PS3.18 tests come first, then the `optional` extensions, then the behaviours the
standard leaves open that the tests recorded.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent


@dataclass
class Outcome:
    """One test's result on one server, with what the test observed there."""

    result: str
    optional: bool
    observed: dict[str, str] = field(default_factory=dict)


def run(url: str, junit: Path, extra: list[str]) -> dict[str, Outcome]:
    """Run the suite against `url`; outcomes by test id (module::name[params])."""
    command = [sys.executable, "-m", "pytest", str(HERE), "--base-url", url,
               "-p", "no:cacheprovider", "-q", "--junitxml", str(junit), *extra]
    subprocess.run(command, check=False, stdout=subprocess.DEVNULL)
    outcomes = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        module = case.get("classname", "").rpartition(".")[2]
        properties = {p.get("name", ""): p.get("value", "") for p in case.iter("property")}
        outcomes[f"{module}::{case.get('name')}"] = Outcome(
            result=_result(case), optional=properties.get("optional") == "True",
            observed={k.removeprefix("observed: "): v for k, v in properties.items()
                      if k.startswith("observed: ")})
    return outcomes


def _result(case: ET.Element) -> str:
    for tag, word in (("failure", "FAIL"), ("error", "ERROR"), ("skipped", "skip")):
        if case.find(tag) is not None:
            return word
    return "pass"


def table(servers: dict[str, dict[str, Outcome]]) -> str:
    """Markdown: one row per test, one column per server."""
    names = list(servers)
    tests = list(dict.fromkeys(t for outcomes in servers.values() for t in outcomes))
    optional = {t for outcomes in servers.values() for t, o in outcomes.items() if o.optional}
    lines = ["| test | kind | " + " | ".join(names) + " |",
             "|---|---|" + "---|" * len(names)]
    for test in sorted(tests, key=lambda t: (t in optional, t)):
        kind = "optional" if test in optional else "PS3.18"
        cells = [servers[n][test].result if test in servers[n] else "-" for n in names]
        lines.append(f"| `{test}` | {kind} | " + " | ".join(cells) + " |")
    observed = [(test, what, name, outcome.observed[what]) for test in tests for name in names
                if (outcome := servers[name].get(test)) for what in outcome.observed]
    if observed:
        lines += ["", "| observed | test | server | value |", "|---|---|---|---|"]
        lines += [f"| {what} | `{test}` | {name} | `{value}` |"
                  for test, what, name, value in observed]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("servers", nargs="+", metavar="NAME=BASE_URL")
    args, extra = parser.parse_known_args(argv)  # the rest goes to pytest, e.g. --header
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for spec in args.servers:
            name, _, url = spec.partition("=")
            if not url:
                parser.error(f"expected NAME=BASE_URL, got {spec!r}")
            results[name] = run(url, Path(tmp) / f"{name}.xml", extra)
    print(table(results))


if __name__ == "__main__":
    main()
