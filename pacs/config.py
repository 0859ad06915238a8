"""`pacs serve`'s configuration: one table of options, each taken from its flag, else its
`PACS_<NAME>` environment variable, else the TOML file (`--config FILE` or `PACS_CONFIG`),
else its default. The effective configuration is printed at start as TOML, secrets hidden."""

import argparse
import difflib
import json
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pacs.cores import usable_cores
from pacs.dimse.peers import ACTIONS, Peer, ae_title, store_title
from pacs.dimse.tls import client_context, server_context
from pacs.logs import FORMATS, LEVELS
from pacs.names import StoreName
from pacs.service.iam import ROLES
from pacs.settings import HELP, Settings
from storage.backends import BLOB_STORES, INDEXES, chosen

ENV_PREFIX = "PACS_"
CONFIG_VARIABLE = "PACS_CONFIG"
PRECEDENCE = "flag > PACS_* environment variable > configuration file > default"
MEMBER_KINDS = ("user:", "serviceAccount:", "group:", "domain:")


class ConfigError(ValueError):
    """A value the configuration cannot take; its message is one line for the operator."""


@dataclass(frozen=True)
class Kind:
    """How an option's value is read from text (a flag or a variable) and from TOML."""

    text: Callable[[str], Any]
    toml: Callable[[Any], Any]
    words: str  # what is expected, for error messages
    metavar: str  # the flag's value in --help


def _typed(*types: type) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        if isinstance(value, bool) and bool not in types or not isinstance(value, types):
            raise ValueError
        return value
    return check


def _switch(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered not in _SWITCH_WORDS:
        raise ValueError
    return _SWITCH_WORDS[lowered]


_SWITCH_WORDS = {"true": True, "1": True, "yes": True, "on": True,
                 "false": False, "0": False, "no": False, "off": False, "": False}


def _words(text: str) -> tuple[str, ...]:
    return tuple(word for word in (part.strip() for part in text.split(",")) if word)


def _word_list(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return _words(value)
    if not isinstance(value, list) or not all(isinstance(word, str) for word in value):
        raise ValueError
    return tuple(value)


def _tokens_value(value: Any) -> Path | tuple[tuple[str, str], ...]:
    """A token file's path, or (in TOML only) a table of tokens to identities."""
    if isinstance(value, str):
        return Path(value)
    if not isinstance(value, dict):
        raise ValueError
    return tuple(value.items())


TEXT = Kind(str, _typed(str), "a string", "TEXT")
INTEGER = Kind(int, _typed(int), "an integer", "N")
NUMBER = Kind(float, lambda v: float(_typed(int, float)(v)), "a number", "N")
SWITCH = Kind(_switch, _typed(bool), "true or false", "")
PATH = Kind(Path, lambda v: Path(_typed(str)(v)), "a path", "PATH")
LIST = Kind(_words, _word_list, "a list of strings (or one comma-separated string)", "VALUE")
TOKENS = Kind(Path, _tokens_value, "a path, or a table of tokens to identities", "FILE")


@dataclass(frozen=True)
class Option:
    """One setting: TOML key `name`, flag `--name-with-dashes`, variable `PACS_NAME`."""

    name: str
    kind: Kind
    default: Any
    help: str
    group: str = "server"
    choices: tuple[str, ...] = ()
    metavar: str = ""  # the flag's value in --help (default: the kind's)

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def variable(self) -> str:
        return ENV_PREFIX + self.name.upper()

    def read(self, kind: Callable[[Any], Any], raw: Any, where: str) -> Any:
        """`raw` as this option's value; ConfigError saying what is wrong, after `where`."""
        try:
            value = kind(raw)
        except (ValueError, TypeError):
            raise ConfigError(f"{where}{self.name} must be {self.kind.words}, not "
                              f"{raw!r}") from None
        if self.choices and value not in self.choices:
            raise ConfigError(f"{where}{self.name} must be one of "
                              f"{', '.join(self.choices)}, not {raw!r}")
        return value


SECURITY = "authentication and access"
DIMSE = "DICOM (DIMSE) gateway"
TUNING = "limits and tuning"
OPTIONS: tuple[Option, ...] = (
    Option("host", TEXT, "127.0.0.1", "address to listen on", metavar="ADDRESS"),
    Option("port", INTEGER, 8080, "port to listen on"),
    Option("data", PATH, Path("pacs-data"),
           "data directory: index and blobs (created if missing)", metavar="DIR"),
    Option("index", TEXT, "", "the index: postgresql://USER:PASSWORD@HOST/DB shared by "
           "replicas (default: SQLite in the data directory)", metavar="URL"),
    Option("blobs", TEXT, "", "the blobs: s3://BUCKET/PREFIX, endpoint and credentials from "
           "AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION (default: "
           "files in the data directory)", metavar="URL"),
    Option("workers", INTEGER, usable_cores(), "worker processes (default: one per usable "
           "core, a container's CPU limit included)"),
    Option("store", LIST, (), "further stores projects/P/locations/L/datasets/D/dicomStores/S "
           "(repeatable, or comma-separated)", metavar="NAME"),
    Option("gcs_root", PATH, None, "directory that gs://BUCKET/PATH URIs of dicomStores.import "
           "and export map to, as DIR/BUCKET/PATH (default: DATA/gcs)", metavar="DIR"),
    Option("viewer", PATH, None, "an OHIF v3 build (the dist folder of `npm pack @ohif/app`) "
           "served at /viewer, set up for this server", metavar="DIR"),
    Option("public_url", TEXT, "", "the base URL clients reach the server at (pins "
           "RetrieveURLs and the viewer's DICOMweb root)", metavar="URL"),
    Option("cors_origin", LIST, (), "origins browsers may call from, e.g. "
           "https://viewer.example (repeatable; default * while authentication is off)",
           metavar="ORIGIN"),
    Option("forwarded_allow_ips", LIST, ("127.0.0.1", "::1"),
           "proxy addresses whose X-Forwarded-* headers are honoured (*: any)", metavar="IPS"),
    Option("log_level", TEXT, "info", "the least severe messages logged (info: one line per "
           "request)", choices=LEVELS, metavar="LEVEL"),
    Option("log_format", TEXT, "text", "text, or json: one JSON object per line",
           choices=FORMATS, metavar="FORMAT"),
    Option("auth_tokens", TOKENS, None, "JSON file mapping each bearer token to an identity "
           'in Google\'s member syntax, e.g. {"s3cr3t": "user:alice@example.com"}; turns '
           "authentication on (in the TOML file, also a table of tokens)", SECURITY),
    Option("admin", LIST, (), "identities holding every permission (repeatable)", SECURITY,
           metavar="IDENTITY"),
    Option("allow_unauthenticated", SWITCH, False, "serve a non-loopback address without "
           "authentication", SECURITY),
    Option("audit_log", PATH, None, "append a JSON line per request: who did what to which "
           "resource with what result", SECURITY, metavar="FILE"),
    Option("oidc_issuer", TEXT, "", "accept OIDC JWTs from this issuer (its `iss`), e.g. a "
           "Keycloak realm", SECURITY, metavar="URL"),
    Option("oidc_audience", TEXT, "", "the `aud` OIDC tokens must carry", SECURITY),
    Option("oidc_jwks", TEXT, "", "the issuer's signing keys: a JWKS file or URL", SECURITY,
           metavar="PATH_OR_URL"),
    Option("oidc_identity_claim", TEXT, "email",
           "the claim naming the caller, as user:<claim>", SECURITY),
    Option("oidc_roles_claim", TEXT, "",
           "dotted path to the token's roles, e.g. realm_access.roles", SECURITY),
    Option("oidc_role_map", PATH, None,
           "JSON file: token role -> list of {resource, role} Google roles", SECURITY,
           metavar="FILE"),
    Option("dimse_port", INTEGER, None, "serve DICOM (C-ECHO, C-STORE, C-FIND, C-GET, "
           "C-MOVE, worklist) on this port too, e.g. 11112, beside HTTP on the same address",
           DIMSE, metavar="PORT"),
    Option("ae_title", TEXT, "PACS", "the gateway's AE title (the default store's)", DIMSE),
    Option("dimse_store", LIST, (), "another AE title of the gateway and the store it reaches, "
           "TITLE=projects/P/locations/L/datasets/D/dicomStores/S (repeatable; the store is "
           "created if need be)", DIMSE, metavar="TITLE=STORE"),
    Option("dimse_peer", LIST, (), "a known DICOM peer TITLE@HOST:PORT (repeatable), a C-MOVE "
           "destination: once any is given, only these AE titles may associate, each from "
           f"its host, and TITLE@HOST:PORT/ACTION+… allows it only some of {', '.join(ACTIONS)} "
           "(without any peer, only on loopback may anyone)", DIMSE, metavar="PEER"),
    Option("worklist", PATH, None, "a folder of Modality Worklist items, one DICOM JSON file "
           "each, answered to worklist C-FINDs (read at each query)", DIMSE, metavar="DIR"),
    Option("dimse_tls_cert", PATH, None, "serve DICOM over TLS (TLS 1.2 and later) with this "
           "PEM certificate (chain)", DIMSE, metavar="FILE"),
    Option("dimse_tls_key", PATH, None, "the PEM private key of --dimse-tls-cert", DIMSE,
           metavar="FILE"),
    Option("dimse_tls_ca", PATH, None, "require DICOM peers to present a certificate signed "
           "by this PEM authority (mutual TLS), and trust it in peers reached over TLS",
           DIMSE, metavar="FILE"),
    Option("dimse_tls_peer", LIST, (), "the AE title of a --dimse-peer to reach over TLS "
           "(C-MOVE, storage commitment reports), presenting --dimse-tls-cert when given "
           "(repeatable)", DIMSE, metavar="TITLE"),
    *(Option(f.name, INTEGER if isinstance(f.default, int) else NUMBER, f.default,
             f.metadata[HELP], TUNING) for f in fields(Settings) if HELP in f.metadata),
)
BY_NAME = {option.name: option for option in OPTIONS}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Every option as a flag, grouped, its default and variable in its help. A flag left out
    is absent from the namespace, so the variable or the file may set it."""
    parser.add_argument("--config", type=Path, default=argparse.SUPPRESS, metavar="FILE",
                        help=f"a TOML file of options (keys as below, e.g. port = 8080; "
                             f"${CONFIG_VARIABLE})")
    parser.add_argument("--print-config", action="store_true",
                        help="print the effective configuration as TOML and exit")
    groups: dict[str, Any] = {}
    for option in OPTIONS:
        group = groups.get(option.group) or groups.setdefault(
            option.group, parser.add_argument_group(option.group))
        shown = _toml(option.default) if option.default not in (None, "", ()) else "unset"
        extra: dict[str, Any] = {"help": f"{option.help} [{shown}; ${option.variable}]",
                                 "default": argparse.SUPPRESS}
        if option.kind is SWITCH:
            extra["action"] = argparse.BooleanOptionalAction
        else:
            extra.update(type=_flag_type(option), metavar=option.metavar or option.kind.metavar,
                         action="extend" if option.kind is LIST else "store")
        group.add_argument(option.flag, **extra)


def _flag_type(option: Option) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        try:
            return option.read(option.kind.text, text, "")
        except ConfigError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from exc
    return convert


@dataclass(frozen=True)
class Config:
    """Each option's effective value and where it came from."""

    values: dict[str, Any]
    sources: dict[str, str]
    file: Path | None

    def __getitem__(self, name: str) -> Any:
        return self.values[name]

    def shown(self) -> dict[str, tuple[Any, str]]:
        """Each option worth showing → (its value as JSON, secrets hidden; its source): all
        but the limits and tuning at their defaults."""
        return {option.name: (_hidden(option, self.values[option.name]),
                              self.sources[option.name])
                for option in OPTIONS
                if not (self.sources[option.name] == "default" and option.group == TUNING)}

    def to_toml(self) -> str:
        """The configuration as a TOML file would give it, each value with its source."""
        lines = [f"# pacs serve configuration ({PRECEDENCE})"]
        if self.file is not None:
            lines.append(f"# file: {self.file}")
        for name, (value, source) in self.shown().items():
            lines.append(f"# {name} is unset" if value in (None, "", [])
                         else f"{name} = {_toml(value)}  # {source}")
        lines.append("# limits and tuning not listed are at their defaults (pacs serve --help)")
        return "\n".join(lines)

    def settings(self) -> Settings:
        """The server's settings; ConfigError for a value that cannot be used."""
        tuned = {option.name: self.values[option.name] for option in OPTIONS
                 if option.group == TUNING}
        dimse = self._dimse()
        return Settings(data_dir=self["data"],
                        index_url=self._backend("index", INDEXES, "index"),
                        blobs_url=self._backend("blobs", BLOB_STORES, "blob store"),
                        stores=tuple(dict.fromkeys((*self._stores(), *(
                            store for _, store in map(store_title, dimse["dimse_stores"]))))),
                        gcs_dir=self["gcs_root"], viewer_dir=self._viewer(),
                        auth_tokens=self._tokens(), admins=self["admin"],
                        cors_origins=self["cors_origin"] or ("*",),
                        forwarded_allow_ips=self["forwarded_allow_ips"],
                        public_url=self["public_url"], audit_log=self["audit_log"],
                        **dimse, **self._oidc(), **tuned)

    def where(self, name: str) -> str:
        """How the operator set option `name`, for messages."""
        option = BY_NAME[name]
        return {"flag": option.flag, "environment": option.variable,
                "file": f"{name} in {self.file}", "default": name}[self.sources[name]]

    def _dimse(self) -> dict[str, Any]:
        """The gateway's settings, each checked (pacs/dimse/peers.py)."""
        try:
            title = ae_title(self["ae_title"])
        except ValueError as exc:
            raise ConfigError(f"{self.where('ae_title')}: {exc}") from None
        try:
            peers = tuple(str(Peer.parse(text)) for text in self["dimse_peer"])
        except ValueError as exc:
            raise ConfigError(f"{self.where('dimse_peer')}: {exc}") from None
        titles = {title: self.where("ae_title")}
        stores = []
        for text in self["dimse_store"]:
            try:
                called, store = store_title(text)
                store = str(StoreName.parse(store))
            except ValueError as exc:
                raise ConfigError(f"{self.where('dimse_store')}: {exc}") from None
            if called in titles:
                raise ConfigError(f"{self.where('dimse_store')}: AE title {called} is given "
                                  f"twice (also by {titles[called]})")
            titles[called] = self.where("dimse_store")
            stores.append(f"{called}={store}")
        port = self["dimse_port"]
        if port is not None and not 0 < port < 65536:
            raise ConfigError(f"{self.where('dimse_port')}: {port} is not a port number")
        tls = {name: self[name] for name in ("dimse_tls_cert", "dimse_tls_key", "dimse_tls_ca")}
        try:
            server_context(*tls.values())
            client_context(*tls.values())
        except ValueError as exc:
            raise ConfigError(f"{self.where('dimse_tls_cert')}: {exc}") from None
        known = {Peer.parse(peer).title for peer in peers}
        if unknown := [t for t in self["dimse_tls_peer"] if t.strip() not in known]:
            raise ConfigError(f"{self.where('dimse_tls_peer')}: {', '.join(unknown)} is not "
                              "the AE title of a --dimse-peer")
        return {"dimse_port": port, "ae_title": title, "dimse_stores": tuple(stores),
                "dimse_peers": peers, "worklist_dir": self["worklist"], **tls,
                "dimse_tls_peers": tuple(t.strip() for t in self["dimse_tls_peer"])}

    def _backend(self, name: str, table: dict[str, Any], what: str) -> str:
        try:
            chosen(table, self[name], what)
        except ValueError as exc:
            raise ConfigError(f"{self.where(name)}: {exc}") from None
        url: str = self[name]
        return url

    def _stores(self) -> tuple[str, ...]:
        try:
            return tuple(str(StoreName.parse(name)) for name in self["store"])
        except ValueError as exc:
            raise ConfigError(f"{self.where('store')}: {exc}") from None

    def _viewer(self) -> Path | None:
        viewer: Path | None = self["viewer"]
        if viewer is not None and not (viewer / "index.html").is_file():
            raise ConfigError(f"{self.where('viewer')} {viewer} has no index.html: give the "
                              "dist folder of an OHIF v3 build (npm pack @ohif/app)")
        return viewer

    def _tokens(self) -> tuple[tuple[str, str], ...]:
        tokens = self["auth_tokens"]
        where = self.where("auth_tokens")
        if isinstance(tokens, Path):
            try:
                read = json.loads(tokens.read_text())
            except (OSError, ValueError) as exc:
                raise ConfigError(f"cannot read {where} {tokens}: {exc}") from None
            where = f"{where} {tokens}"
            tokens = tuple(read.items()) if isinstance(read, dict) else ()
        if tokens is not None and not (tokens and all(
                isinstance(t, str) and t and isinstance(m, str) and m.startswith(MEMBER_KINDS)
                for t, m in tokens)):
            raise ConfigError(f"{where} must be a JSON object of tokens to identities "
                              f"({', '.join(MEMBER_KINDS)}…)")
        return tokens or ()

    def _oidc(self) -> dict[str, Any]:
        if not self["oidc_issuer"]:
            return {}
        if not self["oidc_audience"] or not self["oidc_jwks"]:
            raise ConfigError(f"{self.where('oidc_issuer')} needs oidc_audience and "
                              "oidc_jwks too")
        role_map: list[tuple[str, str, str]] = []
        if self["oidc_role_map"] is not None:
            where = self.where("oidc_role_map")
            try:
                roles = json.loads(self["oidc_role_map"].read_text())
                role_map = [(token_role, grant["resource"], grant["role"])
                            for token_role, grants in roles.items() for grant in grants]
            except (OSError, ValueError, TypeError, KeyError, AttributeError):
                raise ConfigError(f"cannot read {where} {self['oidc_role_map']}: a JSON "
                                  "object of role -> [{resource, role}] expected") from None
            unknown = {role for _, _, role in role_map} - set(ROLES)
            if unknown:
                raise ConfigError(f"{where} names unknown roles {sorted(unknown)}")
        return {"oidc_issuer": self["oidc_issuer"], "oidc_audience": self["oidc_audience"],
                "oidc_jwks": self["oidc_jwks"],
                "oidc_identity_claim": self["oidc_identity_claim"],
                "oidc_roles_claim": self["oidc_roles_claim"], "oidc_role_map": tuple(role_map)}


def resolve(flags: argparse.Namespace, environ: Mapping[str, str]) -> Config:
    """Each option from its flag, variable, the file, or its default, in that order."""
    file = getattr(flags, "config", None) or (
        Path(environ[CONFIG_VARIABLE]) if environ.get(CONFIG_VARIABLE) else None)
    table = _read_file(file) if file is not None else {}
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for option in OPTIONS:
        if hasattr(flags, option.name):
            values[option.name], sources[option.name] = getattr(flags, option.name), "flag"
        elif option.variable in environ:
            values[option.name] = option.read(option.kind.text, environ[option.variable],
                                              f"{option.variable}: ")
            sources[option.name] = "environment"
        elif option.name in table:
            values[option.name] = option.read(option.kind.toml, table[option.name],
                                              f"{file}: ")
            sources[option.name] = "file"
        else:
            values[option.name], sources[option.name] = option.default, "default"
        if option.kind is LIST:
            values[option.name] = tuple(values[option.name])
    return Config(values, sources, file)


def _read_file(path: Path) -> dict[str, Any]:
    """The TOML file's table; ConfigError for one that cannot be read or names no option."""
    try:
        with path.open("rb") as file:
            table = tomllib.load(file)
    except OSError as exc:
        raise ConfigError(f"cannot read the configuration file {path}: "
                          f"{exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    for key in table:
        if key not in BY_NAME:
            close = difflib.get_close_matches(key, BY_NAME, n=1)
            raise ConfigError(f"{path}: unknown option {key!r}"
                              + (f" (did you mean {close[0]!r}?)" if close else ""))
    return table


def _hidden(option: Option, value: Any) -> Any:
    """`value` as JSON, with secrets hidden: tokens given inline, a password in a URL."""
    if option.kind is TOKENS and isinstance(value, tuple):
        return f"({len(value)} tokens, hidden)"
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, str) and "@" in value and "://" in value:
        parts = urlsplit(value)
        if parts.password:
            host = parts.netloc.rsplit("@", 1)[1]
            return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))
    return value


def _toml(value: Any) -> str:
    """A JSON-like value (str, bool, number, list) as TOML."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(item) for item in value) + "]"
    return json.dumps(str(value), ensure_ascii=False)
