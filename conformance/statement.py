"""The conformance statement, generated: `conformance/CONFORMANCE.template.md` is the prose,
and each `{{name}}` in it is replaced by a table built from the tables the server runs on (the
route table and each transaction's representations, the transfer-syntax and codec tables,
the store profiles, the search model, the settings' limits, the Failure Reasons, the DICOM
gateway's SOP classes).

    python -m conformance.statement           # write conformance/CONFORMANCE.md
    python -m conformance.statement --check   # exit 1 if the committed file is stale
"""

import argparse
import sys
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path

from pydicom.datadict import keyword_for_tag
from pydicom.uid import UID
from pynetdicom import AllStoragePresentationContexts

from pacs.dicom.transfer_syntaxes import (
    DEFAULT_TRANSFER_SYNTAX,
    FRAME_SYNTAXES,
    INSTANCE_SYNTAXES,
    TRANSFER_SYNTAXES,
)
from pacs.dimse.gateway import application_entity
from pacs.pixels.codecs import BITSTREAM_CONVERSIONS, CODECS
from pacs.routes import RESOURCES
from pacs.service import failures
from pacs.service.profiles import PROFILES, Profile
from pacs.settings import Settings
from storage.index.attributes import COLUMNS
from storage.query import MatchKind

HERE = Path(__file__).resolve().parent
TEMPLATE = HERE / "CONFORMANCE.template.md"
STATEMENT = HERE / "CONFORMANCE.md"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def resources() -> str:
    """Every resource, method and transaction, with the representations it answers."""
    rows = []
    for resource in RESOURCES:
        for method, transaction in resource.methods.items():
            answers = "<br>".join(f"`{o.describe()}`" for o in transaction.answers)
            rows.append([f"`{resource.template}`", method, transaction.name, answers])
    return _table(["Resource", "Method", "Transaction", "Answers"], rows)


def transfer_syntaxes() -> str:
    """Each transfer syntax: decoded, encoded, lossy, and whether a full store offers it."""
    refused = PROFILES["full"].unrequestable_syntaxes
    rows = []
    for syntax in TRANSFER_SYNTAXES.values():
        codec = CODECS.get(syntax.uid)
        converted = [s for s, t in BITSTREAM_CONVERSIONS if t == syntax.uid]
        encoded = "yes" if codec and codec.encode else \
            f"from {', '.join(converted)} only" if converted else "no"
        offered = "no (PS3.18 8.7.3)" if syntax.uid in refused else \
            "yes" if syntax.uid in INSTANCE_SYNTAXES else "no"
        rows.append([f"`{syntax.uid}`", syntax.name, f"`{syntax.frame_media_type}`",
                     "yes" if codec else "no", encoded,
                     codec.lossy_method or "" if codec else "", offered])
    return _table(["UID", "Name", "Frame media type", "Decoded", "Encoded",
                   "Lossy method", "Offered on request"], rows)


def frame_media_types() -> str:
    """The transfer syntaxes each frame media type carries; the default in bold."""
    refused = PROFILES["full"].unrequestable_syntaxes
    rows = [[f"`{media}`", ", ".join(f"**`{s}`**" if s == DEFAULT_TRANSFER_SYNTAX.get(media)
                                     else f"`{s}`" for s in syntaxes if s not in refused)]
            for media, syntaxes in FRAME_SYNTAXES.items()]
    return _table(["Media type", "Transfer syntaxes"], rows)


def search() -> str:
    """Matching types and the attributes with their own index."""
    kinds = ", ".join(f"`{kind.value}`" for kind in MatchKind)
    keys = ", ".join(keyword_for_tag(tag) or f"{tag:08X}" for tag in COLUMNS)
    return f"- Matching types (PS3.4 C.2.2.2): {kinds}.\n- Indexed keys: {keys}."


def _profile_value(profile: Profile, name: str) -> str:
    value = getattr(profile, name)
    if name == "bulk_data":
        return (f"{', '.join(sorted(value.always))}; {', '.join(sorted(value.large))} over "
                f"{value.large_bytes} bytes; {', '.join(sorted(value.arrays))} over "
                f"{value.array_values} values")
    if name == "search_limits":
        return "; ".join(f"{level.name.lower()} {limits.default} (at most {limits.maximum})"
                         for level, limits in value.items())
    if isinstance(value, frozenset):
        return ", ".join(f"`{getattr(v, 'value', v)}`"
                         for v in sorted(value, key=str)) or "none"
    if isinstance(value, failures.FailureReason):
        return f"`0x{value.code:04X}` ({value.code}) for every failure, the detail saying why"
    if value is None:
        return {"search_keys": "any", "xml_namespace": "none: a bare root",
                "rendered_parameters": "all of PS3.18 8.3.5"}.get(name, "its own")
    if isinstance(value, bool):
        return "yes" if value else "no"
    if name in ("search_keys", "search_defaults"):
        return "; ".join(f"{level.name.lower()}: " + ", ".join(
            sorted(keyword_for_tag(tag) or f"{tag:08X}" for tag in tags))
            for level, tags in value.items())
    return f"`{value}`"


def profiles() -> str:
    """Every behaviour a profile sets, for each profile."""
    names = [f.name for f in fields(Profile) if f.name != "name"]
    return _table(["Behaviour", *(f"`{p}`" for p in PROFILES)],
                  [[name.replace("_", " "), *(_profile_value(p, name)
                                              for p in PROFILES.values())]
                   for name in names])


def limits() -> str:
    """The server's limits and their defaults (`Settings`)."""
    defaults = Settings()
    rows = [[f"`{f.name}`", f"`{getattr(defaults, f.name)}`"] for f in fields(Settings)
            if f.name.startswith(("max_", "qido_", "query_")) or f.name.endswith("_seconds")]
    return _table(["Setting", "Default"], rows)


def failure_reasons() -> str:
    """The Failure Reasons a Store response gives (PS3.18 Table 10.5.3-3)."""
    reasons = [v for v in vars(failures).values() if isinstance(v, failures.FailureReason)]
    return _table(["Code", "Meaning"], [[f"`0x{r.code:04X}`", r.meaning] for r in reasons])


def dimse_services() -> str:
    """The SOP classes the DICOM gateway accepts as SCP (PS3.2 A.4.2) other than storage,
    from the gateway's own AE."""
    return _table(["SOP Class (SCP)", "UID"], [[UID(uid).name, f"`{uid}`"]
                                              for uid in _gateway_sop_classes()
                                              if uid not in _STORAGE])


def dimse_storage() -> str:
    """The storage SOP classes the gateway accepts by C-STORE and sends by C-GET and C-MOVE."""
    return _table(["Storage SOP Class", "UID"], [[UID(uid).name, f"`{uid}`"]
                                                 for uid in _gateway_sop_classes()
                                                 if uid in _STORAGE])


_STORAGE = frozenset(str(c.abstract_syntax) for c in AllStoragePresentationContexts)


def _gateway_sop_classes() -> list[str]:
    """The abstract syntaxes of the gateway's AE, with a worklist."""
    ae = application_entity(Settings(worklist_dir=Path("worklist")), open_to_all=False)
    return [str(context.abstract_syntax) for context in ae.supported_contexts]


SECTIONS: dict[str, Callable[[], str]] = {
    "resources": resources, "transfer_syntaxes": transfer_syntaxes,
    "frame_media_types": frame_media_types, "search": search, "profiles": profiles,
    "limits": limits, "failure_reasons": failure_reasons, "dimse_services": dimse_services,
    "dimse_storage": dimse_storage,
}


def generate() -> str:
    """The statement: the template with every `{{section}}` filled in."""
    text = TEMPLATE.read_text()
    for name, build in SECTIONS.items():
        text = text.replace("{{" + name + "}}", build())
    if "{{" in text:
        raise ValueError(f"unknown section in {TEMPLATE.name}: {text[text.index('{{'):][:40]}")
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="exit 1 if conformance/CONFORMANCE.md is not what would be written")
    args = parser.parse_args(argv)
    text = generate()
    if args.check:
        if STATEMENT.read_text() != text:
            print("conformance/CONFORMANCE.md is stale: run python -m conformance.statement",
                  file=sys.stderr)
            return 1
        return 0
    STATEMENT.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
