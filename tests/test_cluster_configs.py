"""The cluster files in cluster/.

Launcher YAMLs (cluster/*.yaml) go through the checks `ray up` makes before it contacts a machine
or a cloud (``commands.create_or_update_cluster`` -> ``_bootstrap_config``: ``prepare_config``,
which fills in the provider's defaults, then ``validate_config`` against ``ray-schema.json``),
without the provider hooks that call AWS. Then what that schema does not check: node types,
worker bounds, explicit command lists, token authentication on every node, the venv's ``ray`` on
the nodes. The KubeRay manifests (cluster/kuberay/) against the fields of the ray.io/v1 CRDs and
our CLI. Last, a real ``ray up`` / ``ray down`` of cluster/local.yaml over ssh on loopback (slow;
skipped without an sshd on 127.0.0.1:22).
"""

from __future__ import annotations

import copy
import getpass
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest
import yaml

from tests.test_dockerfile import copy_parts, image_name, image_tags, parse_dockerfile

REPO = Path(__file__).resolve().parents[1]
CLUSTER = REPO / "cluster"
LAUNCHER_FILES = sorted(CLUSTER.glob("*.yaml"))
KUBERAY = CLUSTER / "kuberay"
COMMAND_KEYS = ("initialization_commands", "setup_commands", "head_setup_commands", "worker_setup_commands",
                "head_start_ray_commands", "worker_start_ray_commands")
TOKEN_FILE = "~/.ray/auth_token"  # Ray's default token path (ray._private.authentication)
LOOPBACK_SKIP = "needs an sshd on 127.0.0.1:22 with key login, and rsync"


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def validate_like_ray_up(raw: dict) -> dict:
    """The launcher config as `ray up` resolves and validates it, offline.

    Mirrors ``_bootstrap_config`` (ray/autoscaler/_private/commands.py): ``prepare_config``
    (provider defaults, merged setup commands, docker checks, per-type worker bounds), the
    provider's ``fillout_available_node_types_resources``, ``validate_config`` (JSON schema, head
    type, sum of min_workers) and the provider's ``bootstrap_config``. The two provider hooks run
    for the local provider, where they are offline; for AWS they are boto3 calls (instance types,
    IAM, subnets, AMIs) and are left out. Ray's on-disk config cache is not used (a cached config
    would skip validation)."""
    from ray.autoscaler._private.providers import _NODE_PROVIDERS
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = copy.deepcopy(raw)
    provider_type = config["provider"]["type"]
    assert _NODE_PROVIDERS.get(provider_type), f"unknown provider type {provider_type!r}"
    config = prepare_config(config)
    if provider_type == "local":
        provider_cls = _NODE_PROVIDERS["local"](config["provider"])
        config = provider_cls.fillout_available_node_types_resources(config)
        validate_config(config)
        return provider_cls.bootstrap_config(config)
    validate_config(config)
    return config


def _start_commands(config: dict) -> list[str]:
    return [c for key in ("head_start_ray_commands", "worker_start_ray_commands") for c in config[key]]


def _ray_start(commands: list[str]) -> str:
    starts = [c for c in commands if re.search(r"\bray start\b", c)]
    assert len(starts) == 1, commands
    return starts[0]


def _repo_mount(raw: dict) -> str:
    """Where the launcher puts this checkout on the nodes (the file mount of ``.``)."""
    mounts = [remote for remote, local in raw["file_mounts"].items() if local in (".", "./")]
    assert len(mounts) == 1, raw["file_mounts"]
    return mounts[0].rstrip("/")


def launcher_problems(raw: dict) -> list[str]:
    """What Ray's validation lets through: node types, worker bounds, command lists taken from
    Ray's provider defaults, the head's autoscaler, token authentication, file mounts."""
    from ray.autoscaler._private.util import prepare_config

    problems = []
    prepared = prepare_config(copy.deepcopy(raw))
    types = prepared["available_node_types"]
    head = prepared["head_node_type"]
    if head not in types:
        problems.append(f"head_node_type {head!r} is not one of {sorted(types)}")
    for name, node in types.items():
        lo, hi = node.get("min_workers", 0), node.get("max_workers", 0)
        if lo > hi:
            problems.append(f"{name}: min_workers {lo} > max_workers {hi}")
        if hi > prepared["max_workers"]:
            problems.append(f"{name}: max_workers {hi} > the global max_workers {prepared['max_workers']}")
    if sum(n.get("min_workers", 0) for n in types.values()) > prepared["max_workers"]:
        problems.append("the min_workers add up to more than max_workers")
    if raw["provider"]["type"] == "local":
        ips = len(raw["provider"].get("worker_ips", []))
        for key in ("min_workers", "max_workers"):
            if raw.get(key, 0) > ips:  # Ray only warns and caps it
                problems.append(f"{key}={raw[key]} but {ips} worker_ips")
    problems += [f"{key} missing: Ray's provider defaults would run theirs" for key in COMMAND_KEYS if key not in raw]
    head_start = _ray_start(prepared["head_start_ray_commands"])
    worker_start = _ray_start(prepared["worker_start_ray_commands"])
    port = re.search(r"--port[= ](\d+)", head_start)
    if "--head" not in head_start or "--autoscaling-config=~/ray_bootstrap_config.yaml" not in head_start:
        problems.append(f"the head must start Ray with its autoscaler: {head_start!r}")
    if not port or f"--address=$RAY_HEAD_IP:{port.group(1)}" not in worker_start:
        problems.append(f"workers must join $RAY_HEAD_IP at the head's --port: {worker_start!r}")
    modes = {re.search(r"RAY_AUTH_MODE=(\w+)", c).group(1) if "RAY_AUTH_MODE=" in c else None
             for c in (head_start, worker_start)}
    if len(modes) != 1 or None in modes:
        problems.append(f"set the same RAY_AUTH_MODE on the head and the workers, got {modes}")
    elif modes == {"token"} and TOKEN_FILE not in raw.get("file_mounts", {}):
        problems.append(f"RAY_AUTH_MODE=token: every node needs the token at {TOKEN_FILE} (file_mounts)")
    for remote, local in raw.get("file_mounts", {}).items():
        if not local.startswith(("~", "/")) and not (REPO / local).exists():
            problems.append(f"file_mounts {remote}: {local} is not in the repository")
    return problems


# ---------------------------------------------------------------- Ray's own validation


def test_launcher_files_are_there():
    assert {p.name for p in LAUNCHER_FILES} >= {"aws.yaml", "local.yaml"}


@pytest.mark.parametrize("path", LAUNCHER_FILES, ids=lambda p: p.name)
def test_passes_rays_offline_validation(path, monkeypatch):
    from ray.autoscaler._private import providers

    def no_cloud(provider_config):
        raise AssertionError("the AWS provider must not be loaded: it calls AWS (boto3)")

    monkeypatch.setitem(providers._NODE_PROVIDERS, "aws", no_cloud)
    had_boto3 = "boto3" in sys.modules
    config = validate_like_ray_up(load(path))
    assert config["head_node_type"] in config["available_node_types"]
    assert had_boto3 or "boto3" not in sys.modules


def _rename(mapping: dict, old: str, new: str) -> None:
    mapping[new] = mapping.pop(old)


MISSPELLINGS = {
    "max_worker": ("aws.yaml", lambda c: _rename(c, "max_workers", "max_worker")),
    "head_node_typ": ("aws.yaml", lambda c: _rename(c, "head_node_type", "head_node_typ")),
    "node type max_worker": ("aws.yaml", lambda c: _rename(c["available_node_types"]["sim.cpu"], "max_workers", "max_worker")),
    "docker.imgae": ("aws.yaml", lambda c: _rename(c["docker"], "image", "imgae")),
    "local file_mount": ("local.yaml", lambda c: _rename(c, "file_mounts", "file_mount")),
    "local auth.ssh_usr": ("local.yaml", lambda c: _rename(c["auth"], "ssh_user", "ssh_usr")),
}


@pytest.mark.parametrize("case", sorted(MISSPELLINGS))
def test_a_misspelt_key_fails_rays_validation(case):
    import jsonschema

    name, mutate = MISSPELLINGS[case]
    config = load(CLUSTER / name)
    mutate(config)
    with pytest.raises((jsonschema.ValidationError, ValueError)):
        validate_like_ray_up(config)


def test_what_rays_validation_lets_through_is_caught_here():
    """Ray's schema accepts these; launcher_problems does not."""
    from ray.autoscaler._private.util import prepare_config, validate_config

    raw = load(CLUSTER / "aws.yaml")
    bad = copy.deepcopy(raw)
    bad["available_node_types"]["sim.cpu"].update(min_workers=5, max_workers=2)
    validate_config(prepare_config(copy.deepcopy(bad)))  # Ray: fine
    assert any("min_workers 5 > max_workers 2" in p for p in launcher_problems(bad))
    ours = {c for key in COMMAND_KEYS for c in raw[key]}
    for key in ("setup_commands", "head_setup_commands"):
        bad = copy.deepcopy(raw)
        del bad[key]
        leaked = [c for c in prepare_config(copy.deepcopy(bad))["head_setup_commands"] if c not in ours]
        assert any("pip install" in c for c in leaked), leaked  # from Ray's AWS defaults
        assert any(key in p for p in launcher_problems(bad))
    bad = copy.deepcopy(raw)
    bad["worker_start_ray_commands"] = [c.replace("export RAY_AUTH_MODE=token;", "") for c in bad["worker_start_ray_commands"]]
    assert any("RAY_AUTH_MODE" in p for p in launcher_problems(bad))
    bad = copy.deepcopy(raw)
    del bad["file_mounts"][TOKEN_FILE]
    assert any(TOKEN_FILE in p for p in launcher_problems(bad))


# ---------------------------------------------------------------- what the schema does not check


@pytest.mark.parametrize("path", LAUNCHER_FILES, ids=lambda p: p.name)
def test_launcher_semantics(path):
    assert launcher_problems(load(path)) == []


@pytest.mark.parametrize("path", LAUNCHER_FILES, ids=lambda p: p.name)
def test_provider_keys_are_ones_ray_knows(path):
    """The schema lets any key into `provider:` (a misspelt `regoin` passes): compare with the keys it lists."""
    from ray.autoscaler import __file__ as autoscaler_init

    schema = json.loads((Path(autoscaler_init).parent / "ray-schema.json").read_text())
    known = set(schema["properties"]["provider"]["properties"])
    assert set(load(path)["provider"]) <= known, set(load(path)["provider"]) - known


def test_aws_node_types():
    raw = load(CLUSTER / "aws.yaml")
    types = raw["available_node_types"]
    head = types[raw["head_node_type"]]
    assert head["resources"].get("GPU", 0) >= 1 and head["resources"].get("learner") == 1, head["resources"]
    workers = {name: t for name, t in types.items() if name != raw["head_node_type"]}
    assert workers and all(t["resources"].get("CPU", 0) >= 1 and "GPU" not in t["resources"] for t in workers.values())
    assert sum(t["max_workers"] for t in workers.values()) > sum(t.get("min_workers", 0) for t in workers.values())
    for name, t in types.items():
        assert t["node_config"].get("InstanceType"), name  # node_config is free-form for the schema
    assert any(t["node_config"].get("InstanceMarketOptions", {}).get("MarketType") == "spot" for t in workers.values())


def test_aws_installs_the_synced_checkout_in_the_image():
    raw = load(CLUSTER / "aws.yaml")
    mount = _repo_mount(raw)
    assert any(re.search(rf"pip install .*-e {re.escape(mount)}$", c) for c in raw["setup_commands"])
    assert any("boto3" in c for c in raw["head_setup_commands"])  # the head's autoscaler talks to EC2


def test_local_start_commands_call_the_venvs_ray():
    raw = load(CLUSTER / "local.yaml")
    venv_ray = f"{_repo_mount(raw)}/.venv/bin/ray"
    for command in _start_commands(raw):
        calls = [w for w in re.split(r"[\s;]+", command) if w == "ray" or w.endswith("/ray")]
        assert calls and all(w == venv_ray for w in calls), command
    assert f"make -C {_repo_mount(raw)} venv" in raw["setup_commands"]


DEBIAN_BASHRC = """# ~/.bashrc: executed by bash(1) for non-login shells.
# If not running interactively, don't do anything
case $- in
    *i*) ;;
      *) return;;
esac
HISTCONTROL=ignoreboth
"""


def _bashrc_command(raw: dict) -> str:
    commands = [c for c in raw["setup_commands"] if ".bashrc" in c]
    assert len(commands) == 1, raw["setup_commands"]
    return commands[0]


def _which_ray(home: Path, interactive_login: bool) -> str:
    from ray.autoscaler._private.command_runner import _with_interactive

    env = {"HOME": str(home), "PATH": "/usr/bin:/bin", "TERM": "dumb"}
    if interactive_login:  # the shell Ray's launcher runs commands in, `ray down`'s `ray stop` included
        argv = " ".join(_with_interactive("command -v ray"))
        out = subprocess.run(argv, shell=True, env=env, capture_output=True, text=True, timeout=30)
    else:  # `ssh host cmd`: Debian's bash sources ~/.bashrc, whose guard returns at once
        out = subprocess.run(["bash", "-c", ". ~/.bashrc; command -v ray"], env=env, capture_output=True,
                             text=True, timeout=30)
    return out.stdout.strip().splitlines()[-1] if out.stdout.strip() else ""


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_local_setup_puts_the_venv_on_path_for_non_interactive_shells(tmp_path):
    raw = load(CLUSTER / "local.yaml")
    home = tmp_path / "home"
    fake_ray = home / _repo_mount(raw).removeprefix("~/") / ".venv" / "bin" / "ray"
    fake_ray.parent.mkdir(parents=True)
    fake_ray.write_text("#!/bin/sh\necho venv ray\n")
    fake_ray.chmod(0o755)
    env = {"HOME": str(home), "PATH": "/usr/bin:/bin"}

    (home / ".bashrc").write_text(DEBIAN_BASHRC)
    for _ in range(2):  # setup commands run on every `ray up`
        subprocess.run(["bash", "-c", _bashrc_command(raw)], env=env, check=True, timeout=30)
    bashrc = (home / ".bashrc").read_text()
    assert bashrc.count("recore-dist/.venv/bin") == 1 and bashrc.endswith(DEBIAN_BASHRC), bashrc
    assert _which_ray(home, interactive_login=False) == str(fake_ray)
    assert _which_ray(home, interactive_login=True) == str(fake_ray)

    (home / ".bashrc").unlink()  # no ~/.bashrc yet: created
    subprocess.run(["bash", "-c", _bashrc_command(raw)], env=env, check=True, timeout=30)
    assert _which_ray(home, interactive_login=False) == str(fake_ray)

    # The usual mistake, a PATH line appended under the guard, is invisible to non-interactive shells.
    (home / ".bashrc").write_text(DEBIAN_BASHRC + f'export PATH="{fake_ray.parent}:$PATH"\n')
    assert _which_ray(home, interactive_login=False) == ""


# ---------------------------------------------------------------- KubeRay manifests

KNOWN_SPEC_KEYS = {"rayVersion", "authOptions", "enableInTreeAutoscaling", "autoscalerOptions", "headGroupSpec",
                   "workerGroupSpecs", "suspend", "headServiceAnnotations", "gcsFaultToleranceOptions", "managedBy"}
DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?\Z")


def kuberay(name: str) -> list[dict]:
    return [doc for doc in yaml.safe_load_all((KUBERAY / name).read_text()) if doc]


def _raycluster() -> dict:
    (doc,) = kuberay("raycluster.yaml")
    return doc


def _rayjob() -> dict:
    (doc,) = kuberay("rayjob.yaml")
    return doc


def _container_problems(where: str, pod_template: dict) -> list[str]:
    problems = []
    containers = (pod_template or {}).get("spec", {}).get("containers") or []
    if not containers:
        return [f"{where}: template.spec.containers is empty"]
    for c in containers:
        if not c.get("name") or not c.get("image"):
            problems.append(f"{where}: every container needs a name and an image: {c}")
        limits = c.get("resources", {}).get("limits", {})
        if not {"cpu", "memory"} <= set(limits):  # Ray takes its CPU count and memory from the limits
            problems.append(f"{where}: container {c.get('name')} needs resources.limits cpu and memory: {limits}")
    return problems


def _gpus(pod_template: dict) -> int:
    ray_container = pod_template["spec"]["containers"][0]  # KubeRay runs Ray in the first container
    return int(ray_container.get("resources", {}).get("limits", {}).get("nvidia.com/gpu", 0))


def raycluster_problems(spec: dict) -> list[str]:
    """A RayClusterSpec against the ray.io/v1 CRD's required fields (rayStartParams was required
    before KubeRay 1.1; kept here for older operators) and what recore-dist needs of it."""
    import ray

    problems = [f"unknown RayClusterSpec field {k!r}" for k in set(spec) - KNOWN_SPEC_KEYS]
    head = spec.get("headGroupSpec") or {}
    if not isinstance(head.get("rayStartParams"), dict):
        problems.append("headGroupSpec.rayStartParams must be a map")
    problems += _container_problems("headGroupSpec", head.get("template"))
    if not problems and _gpus(head["template"]) < 1:
        problems.append("the head (learner) pod must request an nvidia.com/gpu")
    groups = spec.get("workerGroupSpecs") or []
    if not groups:
        problems.append("no workerGroupSpecs (simulator pods)")
    names = [g.get("groupName") for g in groups]
    if len(set(names)) != len(names):
        problems.append(f"groupName values must be unique: {names}")
    for g in groups:
        where = f"workerGroupSpecs[{g.get('groupName')}]"
        if not isinstance(g.get("groupName"), str) or not DNS_LABEL.match(g["groupName"]):
            problems.append(f"{where}: groupName must be a DNS label")
        lo, hi, n = g.get("minReplicas"), g.get("maxReplicas"), g.get("replicas", g.get("minReplicas"))
        if not all(isinstance(v, int) and v >= 0 for v in (lo, hi, n)) or not lo <= n <= hi:
            problems.append(f"{where}: need 0 <= minReplicas <= replicas <= maxReplicas, got {lo}, {n}, {hi}")
        if not isinstance(g.get("rayStartParams"), dict):
            problems.append(f"{where}: rayStartParams must be a map")
        problems += _container_problems(where, g.get("template"))
    for where, params in [("head", head.get("rayStartParams") or {})] + [
            (g.get("groupName"), g.get("rayStartParams") or {}) for g in groups]:
        problems += [f"{where}: rayStartParams {k} must be a string" for k, v in params.items() if not isinstance(v, str)]
    if spec.get("enableInTreeAutoscaling") is not True:
        problems.append("enableInTreeAutoscaling must be true (the simulator group scales)")
    if ".".join(str(spec.get("rayVersion")).split(".")[:2]) != ".".join(ray.__version__.split(".")[:2]):
        problems.append(f"rayVersion {spec.get('rayVersion')} is not the installed Ray {ray.__version__}")
    return problems


def test_kuberay_manifests_are_ray_io_v1():
    cluster, job = _raycluster(), _rayjob()
    assert (cluster["apiVersion"], cluster["kind"]) == ("ray.io/v1", "RayCluster")
    assert (job["apiVersion"], job["kind"]) == ("ray.io/v1", "RayJob")
    for doc in (cluster, job):
        assert DNS_LABEL.match(doc["metadata"]["name"]), doc["metadata"]


@pytest.mark.parametrize("which", ["RayCluster", "RayJob.rayClusterSpec"])
def test_kuberay_cluster_spec(which):
    spec = _raycluster()["spec"] if which == "RayCluster" else _rayjob()["spec"]["rayClusterSpec"]
    assert raycluster_problems(spec) == []
    learner = json.loads(shlex.split(spec["headGroupSpec"]["rayStartParams"]["resources"])[0])
    assert learner == {"learner": 1}  # the same custom resource as cluster/aws.yaml's head
    assert spec.get("authOptions", {}).get("mode") == "token"
    for g in spec["workerGroupSpecs"]:
        assert _gpus(g["template"]) == 0, g["groupName"]


@pytest.mark.parametrize("mutate, expected", [
    (lambda s: s["workerGroupSpecs"][0].update(minReplicas=9), "minReplicas <= replicas <= maxReplicas"),
    (lambda s: s["workerGroupSpecs"][0].pop("groupName"), "groupName"),
    (lambda s: s["headGroupSpec"].pop("rayStartParams"), "rayStartParams must be a map"),
    (lambda s: s["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]["resources"].pop("limits"), "limits"),
    (lambda s: s["headGroupSpec"]["template"]["spec"]["containers"][0].pop("image"), "an image"),
    (lambda s: s.update(workerGroupSpec=s.pop("workerGroupSpecs")), "workerGroupSpec"),
    (lambda s: s["workerGroupSpecs"][0]["rayStartParams"].update({"num-cpus": 4}), "must be a string"),
])
def test_kuberay_check_can_fail(mutate, expected):
    spec = copy.deepcopy(_raycluster()["spec"])
    mutate(spec)
    assert any(expected in p for p in raycluster_problems(spec)), raycluster_problems(spec)


def test_rayjob_runs_the_raycluster_spec():
    assert _rayjob()["spec"]["rayClusterSpec"] == _raycluster()["spec"], "keep the two files in step"
    spec = _rayjob()["spec"]
    assert spec["shutdownAfterJobFinishes"] is True and spec["ttlSecondsAfterFinished"] > 0


def _image_layout() -> tuple[str, str, list[str]]:
    """(WORKDIR, HOME, directories copied into WORKDIR) of the Dockerfile's final stage."""
    instructions = parse_dockerfile((REPO / "Dockerfile").read_text())
    last = max(i.stage for i in instructions)
    final = [i for i in instructions if i.stage == last]
    workdir = [i.args for i in final if i.keyword == "WORKDIR"][-1]
    home = re.search(r"HOME=(\S+)", " ".join(i.args for i in final if i.keyword == "ENV")).group(1)
    copied = [src for i in final if i.keyword == "COPY" for flags, sources, _ in [copy_parts(i.args)]
              if "from" not in flags for src in sources]
    return workdir, home, copied


def test_rayjob_entrypoint_is_a_recore_dist_train_command():
    from recore_dist import config as config_lib
    from recore_dist.cli import _parser
    from recore_dist.runtime.config import TrainConfig

    words = shlex.split(_rayjob()["spec"]["entrypoint"])
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert words[0] in scripts, f"{words[0]} is not a console script of ours ({sorted(scripts)})"
    args = _parser().parse_args(words[1:])
    assert args.command == "train" and args.address == "auto", args
    workdir, home, copied = _image_layout()
    assert args.config.startswith(workdir + "/"), f"{args.config} is not under the image's {workdir}"
    relative = args.config[len(workdir) + 1:]
    assert (REPO / relative).is_file() and relative.split("/")[0] in copied, (relative, copied)
    # The same resolution as `recore-dist train` (unknown keys and bad values raise).
    cfg = config_lib.load(TrainConfig, REPO / relative, list(args.overrides) + [f"ray.address={args.address}"])
    assert cfg.runner == "ray" and cfg.ray.address == "auto"
    assert str(cfg.logdir).startswith(home + "/"), f"logdir {cfg.logdir} must be writable by the image's user"


def test_kuberay_images_are_the_dockerfile_tags():
    tags = image_tags((REPO / "Dockerfile").read_text())
    for spec in (_raycluster()["spec"], _rayjob()["spec"]["rayClusterSpec"]):
        head = spec["headGroupSpec"]["template"]["spec"]["containers"][0]["image"]
        assert image_name(head) == tags["cuda"], head
        for g in spec["workerGroupSpecs"]:
            for c in g["template"]["spec"]["containers"]:
                assert image_name(c["image"]) == tags["cpu"], (g["groupName"], c["image"])


# ---------------------------------------------------------------- real `ray up` on loopback


def _ssh_key() -> Path | None:
    keys = [Path.home() / ".ssh" / name for name in ("id_ed25519", "id_rsa", "id_ecdsa")]
    return next((k for k in keys if k.exists()), None)


def _loopback_ssh_works() -> bool:
    if shutil.which("rsync") is None or shutil.which("ssh") is None or _ssh_key() is None:
        return False
    try:
        socket.create_connection(("127.0.0.1", 22), timeout=2).close()
    except OSError:
        return False
    probe = subprocess.run(["ssh", "-i", str(_ssh_key()), "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
                            "-o", "UserKnownHostsFile=/dev/null", "-o", "ConnectTimeout=5",
                            f"{getpass.getuser()}@127.0.0.1", "command -v rsync"], capture_output=True, timeout=20)
    return probe.returncode == 0


def _local_ray_running() -> bool:
    import psutil

    for proc in psutil.process_iter(["name"]):
        if proc.info["name"] in ("gcs_server", "raylet"):
            return True
    return False


@pytest.mark.slow
@pytest.mark.ray
@pytest.mark.timeout(900)
def test_ray_up_and_down_on_loopback(tmp_path):
    """`ray up -y` of cluster/local.yaml on 127.0.0.1 (no workers), then `ray down -y`.

    Runs the YAML's own commands, with one change: they use this checkout and its venv in place of
    a synced copy in ~/recore-dist (a copy would build a fresh venv: minutes and network). The
    setup edits ~/.bashrc, which is restored afterwards."""
    if not _loopback_ssh_works():
        pytest.skip(LOOPBACK_SKIP)
    if _local_ray_running():
        pytest.skip("a Ray instance runs on this machine: the launcher's `ray stop` would end it")
    ray_cli = str(Path(sys.executable).parent / "ray")
    if not (Path.home() / ".ray" / "auth_token").exists():
        subprocess.run([ray_cli, "get-auth-token", "--generate"], check=True, capture_output=True, timeout=60)
    raw = load(CLUSTER / "local.yaml")
    mount = _repo_mount(raw)
    del raw["file_mounts"][mount]
    raw["cluster_name"] = f"recore-loopback-{os.getpid()}"
    raw["provider"].update(head_ip="127.0.0.1", worker_ips=[])
    raw["auth"] = {"ssh_user": getpass.getuser(), "ssh_private_key": str(_ssh_key())}
    text = yaml.safe_dump(raw).replace(mount, str(REPO)).replace(f"$HOME/{mount.removeprefix('~/')}", str(REPO))
    config_path = tmp_path / "loopback.yaml"
    config_path.write_text(text)
    validate_like_ray_up(yaml.safe_load(text))

    bashrc = Path.home() / ".bashrc"
    saved = bashrc.read_text() if bashrc.exists() else None
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    try:
        up = subprocess.run([ray_cli, "up", "-y", "--no-config-cache", str(config_path)], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=600)
        assert up.returncode == 0, up.stdout[-4000:] + up.stderr[-4000:]
        # Over ssh, in the launcher's shell: finds the venv's `ray` through ~/.bashrc, as `ray down` must.
        status = subprocess.run([ray_cli, "exec", str(config_path), "RAY_AUTH_MODE=token ray status"], cwd=REPO,
                                env=env, capture_output=True, text=True, timeout=180)
        assert status.returncode == 0 and "Active:" in status.stdout, status.stdout[-4000:] + status.stderr[-4000:]
    finally:
        down = subprocess.run([ray_cli, "down", "-y", str(config_path)], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=300)
        if saved is None:
            bashrc.unlink(missing_ok=True)
        else:
            bashrc.write_text(saved)
    assert down.returncode == 0, down.stdout[-4000:] + down.stderr[-4000:]
    deadline = time.time() + 30
    while _local_ray_running() and time.time() < deadline:  # `ray down` ran `ray stop` over ssh
        time.sleep(1)
    assert not _local_ray_running(), "Ray still runs after `ray down`: `ray stop` did not find ray over ssh"
