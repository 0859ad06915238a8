"""A Dockerfile read, and its steps run here without Docker (for tests/test_dockerfile.py).

It covers what our Dockerfile uses of the Dockerfile reference: comments and parser
directives, line continuations, ARG and ENV substitution, stages, COPY from a build context
filtered by .dockerignore (moby's patternmatcher rules), RUN with --mount, HEALTHCHECK,
ENTRYPOINT and CMD. Each stage's own container paths (/src, /wheels, /data: any not under a
directory of the base image's) live in a directory per stage here; RUN commands get them
rewritten to those. Only the RUN steps the caller chooses are run; the others are listed.
"""

import json
import os
import posixpath
import re
import shlex
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

# Top-level directories of the base image: paths under them are left as they are.
SYSTEM_DIRS = frozenset({"bin", "boot", "dev", "etc", "lib", "lib64", "opt", "proc", "root",
                         "run", "sbin", "sys", "tmp", "usr", "var"})
# Instructions whose arguments Docker expands $VARIABLES in (RUN, CMD... leave it to the shell).
EXPANDED = frozenset({"ADD", "COPY", "ENV", "EXPOSE", "FROM", "LABEL", "STOPSIGNAL", "USER",
                      "VOLUME", "WORKDIR", "ARG"})
_FLAG = re.compile(r"--([a-z-]+)=(\S+)\s*")
_VARIABLE = re.compile(r"\$(?:\{(\w+)(?::([-+])([^}]*))?\}|(\w+))")
_CONTAINER_PATH = re.compile(r"(?<![\w.$/-])/[\w.+-][\w./+-]*")


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case
    flags: tuple[tuple[str, str], ...]  # --name=value before the arguments
    text: str  # the arguments as written, continuations joined
    line: int

    def flag(self, name: str) -> list[str]:
        return [value for key, value in self.flags if key == name]

    def words(self) -> list[str]:
        """Exec form (a JSON array) as written; shell form as /bin/sh -c runs it."""
        if self.text.startswith("["):
            words = json.loads(self.text)
            assert isinstance(words, list) and all(isinstance(w, str) for w in words)
            return words
        return ["/bin/sh", "-c", self.text]


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[Instruction] = field(default_factory=list)

    def __iter__(self) -> Iterator[Instruction]:
        return iter(self.instructions)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]


@dataclass
class Dockerfile:
    args: dict[str, str]  # ARGs before the first FROM, with their defaults
    stages: list[Stage]

    @classmethod
    def parse(cls, text: str) -> "Dockerfile":
        args: dict[str, str] = {}
        stages: list[Stage] = []
        for instruction in _instructions(text):
            if instruction.keyword == "FROM":
                words = instruction.text.split()
                name = words[2] if len(words) == 3 and words[1].upper() == "AS" else ""
                stages.append(Stage(name or str(len(stages)), expand(words[0], args)))
            elif stages:
                stages[-1].instructions.append(instruction)
            elif instruction.keyword == "ARG":
                name, _, default = instruction.text.partition("=")
                args[name] = _unquote(default)
        return cls(args, stages)

    def stage(self, name: str) -> Stage:
        return next(s for s in self.stages if s.name == name)


def _instructions(text: str) -> Iterator[Instruction]:
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):  # comments vanish inside continuations too
            continue
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending.append(stripped[:-1].strip())
            continue
        pending.append(stripped)
        keyword, _, rest = " ".join(pending).partition(" ")
        pending = []
        flags: list[tuple[str, str]] = []
        rest = rest.strip()
        while match := _FLAG.match(rest):
            flags.append((match[1], match[2]))
            rest = rest[match.end():]
        yield Instruction(keyword.upper(), tuple(flags), rest, start)


def expand(text: str, variables: dict[str, str]) -> str:
    """$NAME, ${NAME}, ${NAME:-default} and ${NAME:+alternative}, as Docker expands them."""
    def value(match: re.Match[str]) -> str:
        name = match[1] or match[4]
        current = variables.get(name, "")
        if match[2] == "-":
            return current or match[3]
        if match[2] == "+":
            return match[3] if current else ""
        return current
    return _VARIABLE.sub(value, text)


def _unquote(text: str) -> str:
    words = shlex.split(text)
    return words[0] if words else ""


def assignments(text: str) -> dict[str, str]:
    """ENV and LABEL arguments: key=value pairs (quoted as the shell quotes), or ENV key value."""
    words = shlex.split(text)
    if words and "=" not in words[0]:
        return {words[0]: " ".join(words[1:])}
    return dict(word.split("=", 1) for word in words)


class DockerIgnore:
    """Which context paths a .dockerignore leaves out: the last pattern matching the path or
    one of its parent directories decides; `!` patterns put paths back."""

    def __init__(self, text: str) -> None:
        self.patterns: list[tuple[bool, str, re.Pattern[str]]] = []  # (keep, text, regex)
        for line in text.splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            keep = line.startswith("!")
            pattern = posixpath.normpath(line.lstrip("!").strip()).lstrip("/")
            self.patterns.append((keep, pattern, re.compile(_pattern_regex(pattern))))

    def excludes(self, path: str) -> bool:
        parts = path.split("/")
        prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
        excluded = False
        for keep, _, regex in self.patterns:
            if any(regex.fullmatch(prefix) for prefix in prefixes):
                excluded = not keep
        return excluded

    def _may_keep_below(self, directory: str) -> bool:
        """Whether a `!` pattern may put back something below an excluded directory."""
        below = directory + "/"
        for keep, text, _ in self.patterns:
            wildcard = re.search(r"[*?\[]", text)
            literal = text[:wildcard.start()] if wildcard else text
            if keep and (literal.startswith(below) or wildcard and below.startswith(literal)):
                return True
        return False

    def files(self, context: Path) -> list[str]:
        """Every file the context sends, relative and with / separators."""
        sent: list[str] = []
        for top, dirs, names in os.walk(context):
            base = Path(top).relative_to(context).as_posix()
            base = "" if base == "." else base
            here = [f"{base}/{name}" if base else name for name in (*dirs, *names)]
            dirs[:] = [name for name, path in zip(dirs, here, strict=False)
                       if not self.excludes(path) or self._may_keep_below(path)]
            sent += [path for path in here[len(here) - len(names):] if not self.excludes(path)]
        return sorted(sent)


def _pattern_regex(pattern: str) -> str:
    regex, i = "", 0
    while i < len(pattern):
        char = pattern[i]
        if pattern.startswith("**", i):
            i += 2
            if pattern.startswith("/", i):
                i += 1
            regex += ".*" if i >= len(pattern) else "(?:.*/)?"
            continue
        if char == "*":
            regex += "[^/]*"
        elif char == "?":
            regex += "[^/]"
        elif char == "[":
            end = pattern.index("]", i)
            regex += pattern[i:end + 1]
            i = end
        elif char == "\\" and i + 1 < len(pattern):
            i += 1
            regex += re.escape(pattern[i])
        else:
            regex += re.escape(char)
        i += 1
    return regex


@dataclass
class StageState:
    """A stage as far as its instructions have been run: what a container of it would get."""

    stage: Stage
    root: Path  # the stage's own container paths live here
    workdir: str = "/"
    variables: dict[str, str] = field(default_factory=dict)  # ARGs and ENVs in scope
    env: dict[str, str] = field(default_factory=dict)  # ENVs: what the container gets
    labels: dict[str, str] = field(default_factory=dict)
    user: str = "root"
    volumes: list[str] = field(default_factory=list)
    exposed: list[str] = field(default_factory=list)
    healthcheck: Instruction | None = None
    entrypoint: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)
    copied: set[str] = field(default_factory=set)  # context files its COPYs took
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def host(self, path: str, mounts: dict[str, Path] | None = None) -> Path:
        """Where container path `path` (relative to WORKDIR) is here."""
        absolute = posixpath.normpath(posixpath.join(self.workdir, path))
        for target, place in sorted((mounts or {}).items(), key=lambda m: -len(m[0])):
            if absolute == target or absolute.startswith(target + "/"):
                return place / posixpath.relpath(absolute, target)
        assert absolute.split("/")[1] not in SYSTEM_DIRS, f"{absolute} is the base image's"
        return self.root / absolute.lstrip("/")

    def rewrite(self, text: str, mounts: dict[str, Path] | None = None) -> str:
        """`text` with each of the stage's own container paths replaced by its place here."""
        def place(match: re.Match[str]) -> str:
            path = match[0]
            if path.split("/")[1] in SYSTEM_DIRS:
                return path
            return str(self.host(path, mounts))
        return _CONTAINER_PATH.sub(place, text)

    def command(self) -> list[str]:
        """What `docker run IMAGE` runs: ENTRYPOINT followed by CMD (both exec form)."""
        return [*self.entrypoint, *self.cmd]


class Build:
    """Runs a Dockerfile's stages here, stage by stage, into a directory per stage."""

    def __init__(self, dockerfile: Dockerfile, context: Path, workspace: Path,
                 environ: dict[str, str], runs: Callable[[str], bool]) -> None:
        self.dockerfile = dockerfile
        self.context = context
        self.ignore = DockerIgnore(_read(context / ".dockerignore"))
        self.workspace = workspace
        self.environ = environ  # every RUN's environment before the stage's ARGs and ENVs
        self.runs = runs  # whether a RUN command is run here (else it is only listed)
        self.stages: dict[str, StageState] = {}

    def run(self) -> StageState:
        """Every stage in turn; the final one, as the image is."""
        for index, stage in enumerate(self.dockerfile.stages):
            state = StageState(stage, self.workspace / f"stage-{index}-{stage.name}")
            state.root.mkdir(parents=True)
            self.stages[stage.name] = state
            for instruction in stage:
                self._step(state, instruction)
        return state

    def _step(self, state: StageState, instruction: Instruction) -> None:
        keyword, text = instruction.keyword, instruction.text
        if keyword in EXPANDED:
            text = expand(text, state.variables)
        if keyword == "ARG":
            name, equals, default = text.partition("=")
            state.variables[name] = _unquote(default) if equals else self.dockerfile.args.get(
                name, "")
        elif keyword == "ENV":
            values = assignments(text)
            state.env.update(values)
            state.variables.update(values)
        elif keyword == "LABEL":
            state.labels.update(assignments(text))
        elif keyword == "WORKDIR":
            state.workdir = posixpath.normpath(posixpath.join(state.workdir, text))
            state.host(".").mkdir(parents=True, exist_ok=True)
        elif keyword == "COPY":
            self._copy(state, instruction, text)
        elif keyword == "RUN":
            self._run(state, instruction)
        elif keyword == "USER":
            state.user = text
        elif keyword == "VOLUME":
            paths = json.loads(text) if text.startswith("[") else text.split()
            state.volumes.extend(paths)
            for path in paths:
                state.host(path).mkdir(parents=True, exist_ok=True)
        elif keyword == "EXPOSE":
            state.exposed.extend(text.split())
        elif keyword == "HEALTHCHECK":
            state.healthcheck = instruction
        elif keyword == "ENTRYPOINT":
            state.entrypoint, state.cmd = instruction.words(), []  # as Docker resets CMD
        elif keyword == "CMD":
            state.cmd = instruction.words()
        else:
            raise AssertionError(f"line {instruction.line}: {keyword} is not simulated here")

    def _copy(self, state: StageState, instruction: Instruction, text: str) -> None:
        words = json.loads(text) if text.startswith("[") else shlex.split(text)
        *sources, dest = words
        origin = instruction.flag("from")
        into_dir = dest.endswith("/") or len(sources) > 1
        target = state.host(dest)
        for source in sources:
            if origin:
                found = [(self.stages[origin[0]].host(source), "")]
            else:
                found = [(self.context / name, name) for name in self.ignore.files(self.context)
                         if name == source or name.startswith(source.rstrip("/") + "/")]
            assert found, f"line {instruction.line}: COPY {source}: not in the build context"
            for path, name in found:
                if name:
                    state.copied.add(name)
                inside = posixpath.relpath(name, source) if name and name != source else ""
                if inside:  # a file of a copied directory keeps its place below dest
                    place = target / inside
                else:
                    place = target / path.name if into_dir else target
                place.parent.mkdir(parents=True, exist_ok=True)
                if path.is_dir():
                    shutil.copytree(path, place, dirs_exist_ok=True)
                else:
                    shutil.copy2(path, place)

    def _run(self, state: StageState, instruction: Instruction) -> None:
        mounts: dict[str, Path] = {}
        for mount in instruction.flag("mount"):
            options = dict(part.split("=", 1) for part in mount.split(",") if "=" in part)
            if options.get("type") == "bind":
                source = self.stages[options["from"]] if "from" in options else None
                place = (source.host(options.get("source", "/")) if source
                         else self.context / options.get("source", "."))
                mounts[options["target"]] = place
            # type=cache (pip's cache) is a speed-up only: pip here has its own
        words = instruction.words()
        shell = words[-1] if words[:2] == ["/bin/sh", "-c"] else shlex.join(words)
        if not self.runs(shell):
            state.skipped.append(shell)
            return
        command = [state.rewrite(word, mounts) for word in words]
        done = subprocess.run(command, cwd=state.host(".", mounts),
                              env={**self.environ, **state.variables},
                              capture_output=True, text=True)
        assert done.returncode == 0, (
            f"line {instruction.line}: RUN {shell} failed ({done.returncode}):\n"
            f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        state.ran.append(shell)


def _read(path: Path) -> str:
    return path.read_text() if path.exists() else ""


def environment(bin_dir: Path) -> dict[str, str]:
    """This process's environment with `bin_dir` first on PATH (the image's Python)."""
    return {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
