"""Lint of the Dockerfile (no Docker engine here): instructions parsed with line continuations,
COPY sources that exist in the build context and survive .dockerignore, ``COPY --from`` stages,
the BASE build argument, the install from pyproject.toml with the Makefile's torch pin, MuJoCo's
GL packages, a non-root user with ``ray`` on PATH, and the image tags the cluster files use."""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from recore_dist.envs.gl import DEFAULT_BACKEND, SYSTEM_PACKAGES

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO / "Dockerfile"


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case: FROM, RUN, COPY, ...
    args: str  # continuation lines joined with spaces
    line: int  # where it starts
    stage: int  # index of its build stage (-1 before the first FROM)


def parse_dockerfile(text: str) -> list[Instruction]:
    """Instructions of a Dockerfile: comment and blank lines dropped (also inside a continuation),
    lines ending in a backslash joined to the next."""
    out: list[Instruction] = []
    parts: list[str] = []
    start, stage = 0, -1
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if not parts:
            start = number
        if line.endswith("\\"):
            parts.append(line[:-1].strip())
            continue
        parts.append(line)
        keyword, _, args = " ".join(p for p in parts if p).partition(" ")
        parts = []
        keyword = keyword.upper()
        stage += keyword == "FROM"
        out.append(Instruction(keyword, args.strip(), start, stage))
    if parts:
        raise ValueError(f"Dockerfile line {start}: a continuation runs past the end of the file")
    return out


def _words(args: str) -> list[str]:
    """COPY/ADD arguments in shell or JSON form."""
    return json.loads(args) if args.startswith("[") else shlex.split(args)


def copy_parts(args: str) -> tuple[dict[str, str], list[str], str]:
    """(flags, sources, destination) of a COPY/ADD instruction."""
    words = _words(args)
    flags = {}
    while words and words[0].startswith("--"):
        key, _, value = words.pop(0)[2:].partition("=")
        flags[key] = value
    if len(words) < 2:
        raise ValueError(f"COPY/ADD needs a source and a destination: {args!r}")
    return flags, words[:-1], words[-1]


def stage_names(instructions: list[Instruction]) -> list[str | None]:
    """The ``AS`` name of each stage (None where it has none)."""
    names = []
    for ins in instructions:
        if ins.keyword == "FROM":
            words = [w for w in ins.args.split() if not w.startswith("--")]
            names.append(words[2].lower() if len(words) == 3 and words[1].lower() == "as" else None)
    return names


def dockerignore_patterns(context: Path) -> list[str]:
    path = context / ".dockerignore"
    if not path.exists():
        return []
    lines = (line.strip() for line in path.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """Docker's .dockerignore matching: ``*`` and ``?`` stay within a path element, ``**`` crosses them."""
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out + r"\Z")


def is_ignored(relpath: str, patterns: list[str]) -> bool:
    """Whether .dockerignore keeps ``relpath`` (or a directory above it) out of the build context;
    the last matching pattern wins, ``!`` re-includes."""
    elements = relpath.strip("/").split("/")
    prefixes = ["/".join(elements[:n]) for n in range(1, len(elements) + 1)]
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        regex = _pattern_regex(pattern.lstrip("!").strip("/"))
        if any(regex.match(prefix) for prefix in prefixes):
            ignored = not negate
    return ignored


def lint_dockerfile(text: str, context: Path = REPO) -> list[str]:
    """Problems a ``docker build`` in ``context`` would hit: COPY/ADD sources that are missing or
    excluded by .dockerignore, ``COPY --from`` stages that are not declared earlier, instructions
    before the first FROM other than ARG, unterminated continuations."""
    try:
        instructions = parse_dockerfile(text)
    except ValueError as exc:
        return [str(exc)]
    problems = []
    if not any(ins.keyword == "FROM" for ins in instructions):
        return ["no FROM instruction"]
    patterns = dockerignore_patterns(context)
    names = stage_names(instructions)
    for ins in instructions:
        where = f"line {ins.line}: {ins.keyword} {ins.args}"
        if ins.stage < 0 and ins.keyword != "ARG":
            problems.append(f"{where}: only ARG may come before the first FROM")
        if ins.keyword not in ("COPY", "ADD"):
            continue
        try:
            flags, sources, _ = copy_parts(ins.args)
        except ValueError as exc:
            problems.append(f"{where}: {exc}")
            continue
        if "from" in flags:
            source_stage = flags["from"].lower()
            earlier = names[: ins.stage]
            if source_stage not in earlier and not (source_stage.isdigit() and int(source_stage) < ins.stage):
                problems.append(f"{where}: --from={flags['from']} is not a stage declared before it ({earlier})")
            continue
        for source in sources:
            if re.match(r"https?://", source):
                continue
            rel = source.lstrip("/")
            matches = [context] if rel in ("", ".") else sorted(context.glob(rel))
            if not matches:
                problems.append(f"{where}: source {source!r} does not exist in the build context {context}")
            for match in matches:
                relpath = match.relative_to(context).as_posix()
                if relpath != "." and is_ignored(relpath, patterns):
                    problems.append(f"{where}: source {relpath!r} is excluded by .dockerignore")
    return problems


def installs_package(run_args: str) -> bool:
    """Whether a RUN installs the build context's package: `pip install .` (not editable)."""
    for command in re.split(r"&&|;|\|\|", run_args):
        words = command.split()
        if "pip" in words and "install" in words[words.index("pip"):]:
            args = words[words.index("install", words.index("pip")) + 1:]
            if "." in args and not {"-e", "--editable"} & set(args):
                return True
    return False


def image_tags(text: str) -> dict[str, str]:
    """The tags the Dockerfile's header documents, by variant: ``{"cpu": ..., "cuda": ...}``.
    A `docker build -t TAG` line with ``--build-arg BASE=nvidia/cuda...`` is the CUDA variant."""
    header = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        header.append(line.lstrip("# "))
    tags = {}
    for line in header:
        if not line.startswith("docker build"):
            continue
        tag = re.search(r"-t\s+(\S+)", line)
        base = re.search(r"--build-arg\s+BASE=(\S+)", line)
        assert tag, f"a documented build without a tag: {line!r}"
        variant = "cuda" if base and "cuda" in base.group(1) else "cpu"
        assert variant not in tags, f"two documented {variant} builds: {tags[variant]}, {tag.group(1)}"
        tags[variant] = tag.group(1)
    return tags


def image_name(reference: str) -> str:
    """``registry/path/recore-dist:tag`` -> ``recore-dist:tag`` (the registry is the user's choice)."""
    return reference.rsplit("/", 1)[-1]


@pytest.fixture(scope="module")
def text() -> str:
    return DOCKERFILE.read_text()


@pytest.fixture(scope="module")
def instructions(text) -> list[Instruction]:
    return parse_dockerfile(text)


def _final(instructions: list[Instruction], keyword: str) -> list[Instruction]:
    last = max(ins.stage for ins in instructions)
    return [ins for ins in instructions if ins.stage == last and ins.keyword == keyword]


def _env(instructions: list[Instruction]) -> dict[str, str]:
    """ENV of the final stage (KEY=VALUE form)."""
    env = {}
    for ins in _final(instructions, "ENV"):
        for word in shlex.split(ins.args):
            key, _, value = word.partition("=")
            env[key] = value
    return env


def test_dockerfile_lints_clean(text):
    assert lint_dockerfile(text) == []


def test_parser_joins_continuations_and_drops_comments():
    ins = parse_dockerfile("ARG A=1\nFROM x AS b\nRUN echo a \\\n    # a comment\n    && echo b\nCOPY a b\n")
    assert [(i.keyword, i.args, i.line, i.stage) for i in ins] == [
        ("ARG", "A=1", 1, -1), ("FROM", "x AS b", 2, 0), ("RUN", "echo a && echo b", 3, 0), ("COPY", "a b", 6, 0)]


@pytest.mark.parametrize("bad, expected", [
    ("FROM python:3.11-slim\nCOPY missing_file.txt /app/\n", "'missing_file.txt' does not exist"),
    ("FROM python:3.11-slim\nCOPY pyproject.toml no_such_dir /app/\n", "'no_such_dir' does not exist"),
    ("FROM python:3.11-slim\nCOPY .venv /opt/venv\n", "excluded by .dockerignore"),
    ("FROM python:3.11-slim AS a\nCOPY --from=builder /opt/venv /opt/venv\n", "--from=builder is not a stage"),
    ("FROM python:3.11-slim AS a\nCOPY --from=b /x /x\nFROM a AS b\n", "--from=b is not a stage"),
    ("RUN echo too early\nFROM python:3.11-slim\n", "only ARG may come before the first FROM"),
    ("FROM python:3.11-slim\nRUN echo \\\n", "runs past the end of the file"),
])
def test_lint_catches(bad, expected):
    problems = lint_dockerfile(bad)
    assert any(expected in p for p in problems), problems


def test_installs_package_reads_pip_commands():
    assert installs_package("pip install --upgrade pip && pip install . && python -c 1")
    assert installs_package("python -m pip install -q .")
    assert not installs_package("pip install -e .") and not installs_package("pip install --editable .")
    assert not installs_package("pip install torch==2.13.0 && ls .")


def test_dockerignore_keeps_the_context_small():
    patterns = dockerignore_patterns(REPO)
    for path in (".venv/bin/python", "runs/quickstart/config.yaml", ".git/HEAD", "py_spy-0.4.3-py2.py3-none-any.whl",
                 "recore_dist/__pycache__/cli.cpython-311.pyc", "__pycache__/x.pyc", "recore_dist.egg-info/PKG-INFO"):
        assert is_ignored(path, patterns), path
    for path in ("pyproject.toml", "README.md", "recore_dist/cli.py", "configs/quickstart.yaml", "cluster/aws.yaml"):
        assert not is_ignored(path, patterns), path
    assert not is_ignored("recore_dist/wheels.py", ["*.whl"]) and is_ignored("a/b.whl", ["**/*.whl"])
    assert not is_ignored("runs/x", ["runs", "!runs/x"])


def test_base_build_arg_picks_the_base_of_every_stage(instructions):
    first_from = next(i for i, ins in enumerate(instructions) if ins.keyword == "FROM")
    args = {ins.args.split("=")[0]: ins.args for ins in instructions[:first_from] if ins.keyword == "ARG"}
    assert "BASE" in args, "ARG BASE must be declared before the first FROM"
    assert args["BASE"] == "BASE=python:3.11-slim", args["BASE"]
    names = stage_names(instructions)
    for ins in (ins for ins in instructions if ins.keyword == "FROM"):
        image = ins.args.split()[0]
        # Every stage starts from ${BASE} or from an earlier stage, so one build arg switches all.
        assert image in ("${BASE}", "$BASE") or image.lower() in names[: ins.stage], ins
    assert instructions[first_from].args.split()[0] in ("${BASE}", "$BASE")
    assert len(names) >= 2 and any("from" in copy_parts(ins.args)[0] for ins in _final(instructions, "COPY"))


def test_installs_the_package_from_pyproject_after_pinned_torch(instructions):
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    pin = re.search(r"torch==[\w.]+", (REPO / "Makefile").read_text()).group(0)
    runs = [ins for ins in instructions if ins.keyword == "RUN" and installs_package(ins.args)]
    assert len(runs) == 1, "one `pip install .` of the package"
    install = runs[0]
    before = [ins for ins in instructions if ins.stage == install.stage and ins.line < install.line]
    copied = {Path(src).as_posix() for ins in before if ins.keyword == "COPY" for src in copy_parts(ins.args)[1]}
    needed = {"pyproject.toml", pyproject["project"]["readme"],
              *(p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"])}
    assert needed <= copied, f"pip install . needs {sorted(needed - copied)} in the build stage"
    torch_runs = [ins for ins in before if ins.keyword == "RUN" and f'"{pin}"' in ins.args]
    assert torch_runs, f"the Makefile's {pin} must be installed before the package"
    assert "--index-url https://download.pytorch.org/whl/cpu" in torch_runs[0].args  # the CPU variant


def test_gl_packages_and_mujoco_backend(instructions):
    installed = set()
    for ins in _final(instructions, "RUN"):
        for command in ins.args.split("&&"):
            if "apt-get install" in command:
                installed |= {w for w in command.split() if not w.startswith("-")}
    for backend, packages in SYSTEM_PACKAGES.items():
        missing = set(packages.split()) - installed
        assert not missing, f"MUJOCO_GL={backend} needs {sorted(missing)} (recore_dist/envs/gl.py)"
    assert {"rsync", "openssh-client"} <= installed  # what the cluster launcher runs in the container
    assert _env(instructions).get("MUJOCO_GL") == DEFAULT_BACKEND


def test_runs_as_non_root_with_ray_on_path(instructions):
    users = _final(instructions, "USER")
    assert users and users[-1].args.split(":")[0] not in ("root", "0"), "the image must not run as root"
    env = _env(instructions)
    # The cluster launcher reads HOME from the image config to place its file mounts.
    assert env.get("HOME", "").startswith("/home/"), env
    venvs = [m.group(1) for ins in instructions if ins.keyword == "RUN"
             for m in [re.search(r"-m venv (\S+)", ins.args)] if m]
    assert len(venvs) == 1, venvs
    venv_bin = f"{venvs[0]}/bin"
    assert env["PATH"].split(":")[0] == venv_bin, env["PATH"]
    # Login shells (`bash --login`, as the launcher and KubeRay run commands) reset PATH on Debian.
    profile = [ins for ins in instructions if ins.keyword == "RUN" and "/etc/profile.d/" in ins.args]
    assert profile and venv_bin in profile[0].args
    copies = [copy_parts(ins.args) for ins in _final(instructions, "COPY")]
    assert any(venvs[0] in sources and flags.get("chown", "").split(":")[0] == users[-1].args.split(":")[0]
               for flags, sources, _ in copies), "the venv must belong to the image's user (head setup pip-installs)"


def test_header_tags_match_the_cluster_launcher_files(text):
    tags = image_tags(text)
    assert set(tags) == {"cpu", "cuda"}, tags
    docker = yaml.safe_load((REPO / "cluster" / "aws.yaml").read_text())["docker"]
    assert image_name(docker["image"]) == tags["cpu"]
    assert image_name(docker["worker_image"]) == tags["cpu"]  # simulators: CPU
    assert image_name(docker["head_image"]) == tags["cuda"]  # learner: GPU
    for path in sorted((REPO / "cluster").glob("*.yaml")):
        docker = yaml.safe_load(path.read_text()).get("docker") or {}
        for key in ("image", "head_image", "worker_image"):
            if key in docker:
                assert image_name(docker[key]) in tags.values(), f"{path.name} docker.{key}={docker[key]}"
