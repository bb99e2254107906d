"""Every cluster/*.yaml passes Ray's own validator, offline, and keeps the promises that the
README and cluster/README.md make.

The validator is the code `ray up` runs (ray/autoscaler/_private/commands.py:
create_or_update_cluster -> _bootstrap_config -> prepare_config, then validate_config against
ray-schema.json). Those two steps need no cloud and are run for every file with the network cut
off. For AWS, the rest of `_bootstrap_config` (key pair, subnets, security group, instance-type
resources) also runs, against the local moto server of tests/s3_server.py, so the security group
that `ray up` would create is inspected, not assumed. GCP has no local stand-in: its provider
bootstrap is left out.
"""

import copy
import pathlib
import re
import socket
import sys
import uuid

import jsonschema
import pytest
import ray
import tomllib
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

pytest_plugins = ["s3_server"]  # fixture aws_endpoint (tests/s3_server.py)

ROOT = pathlib.Path(__file__).resolve().parents[1]
CLUSTER_FILES = sorted((ROOT / "cluster").glob("*.yaml"))
COMMAND_LISTS = ("initialization_commands", "setup_commands", "head_setup_commands",
                 "worker_setup_commands", "head_start_ray_commands", "worker_start_ray_commands")
IMAGE_TAG = re.compile(r"rayproject/ray:(?P<ray>\d+\.\d+\.\d+)-py(?P<py>\d+)-(?P<platform>gpu|cu\d+)$")


def load(path: pathlib.Path) -> dict:
    return yaml.safe_load(path.read_text())


def ray_up_validation(config: dict) -> dict:
    """What `ray up` does to a file before it talks to the cloud: fill defaults, then validate."""
    prepared = prepare_config(copy.deepcopy(config))
    validate_config(prepared)
    return prepared


def pinned_ray_version() -> str:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pins = [d.split("==")[1].split()[0] for d in deps if d.startswith("ray") and "==" in d]
    assert len(pins) == 1, f"expected one pinned ray dependency in pyproject.toml, found {deps}"
    return pins[0]


def images(config: dict) -> list[str]:
    docker = config.get("docker", {})
    found = [docker[k] for k in ("image", "head_image", "worker_image") if k in docker]
    found += [t["docker"]["worker_image"] for t in config["available_node_types"].values()
              if "worker_image" in t.get("docker", {})]
    return found


def gpu_worker_types(config: dict) -> dict:
    return {name: t for name, t in config["available_node_types"].items()
            if name != config["head_node_type"] and t.get("resources", {}).get("GPU", 0) > 0}


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


def test_there_are_cluster_files():
    assert ROOT / "cluster" / "gpu.yaml" in CLUSTER_FILES


@pytest.mark.parametrize("path", CLUSTER_FILES, ids=lambda p: p.name)
def test_ray_validator_accepts_it_offline(path, no_network):
    prepared = ray_up_validation(load(path))
    assert prepared["head_node_type"] in prepared["available_node_types"]


def _head(c: dict) -> dict:
    return c["available_node_types"][c["head_node_type"]]


# name -> (how the copy is broken, what the validator must say)
BREAKAGES = {
    "misspelt top-level key": (lambda c: c.update(max_worker=4), "'max_worker' was unexpected"),
    "misspelt node-type key": (lambda c: _head(c).update(min_worker=0),
                               "'min_worker' was unexpected"),
    "string where a number goes": (lambda c: c.update(max_workers="eight"),
                                   "'eight' is not of type 'integer'"),
    "unknown docker option": (lambda c: c["docker"].update(gpus="all"), "'gpus' was unexpected"),
    "head type not defined": (lambda c: c.update(head_node_type="ray.head.nowhere"),
                              "must be one of `available_node_types`"),
    "min_workers above max_workers": (
        lambda c: [t.update(min_workers=c["max_workers"] + 1) for t in gpu_worker_types(c).values()],
        "max_workers` is smaller than the sum of `min_workers"),
}


@pytest.mark.parametrize("path", CLUSTER_FILES, ids=lambda p: p.name)
@pytest.mark.parametrize("breakage", BREAKAGES, ids=str)
def test_the_same_validator_rejects_a_broken_copy(path, breakage, no_network):
    config = load(path)
    breaks, message = BREAKAGES[breakage]
    breaks(config)
    with pytest.raises((jsonschema.ValidationError, ValueError), match=re.escape(message)):
        ray_up_validation(config)


@pytest.mark.parametrize("path", CLUSTER_FILES, ids=lambda p: p.name)
def test_image_matches_the_pinned_ray_and_this_python(path):
    found = images(load(path))
    assert found, f"{path.name}: no docker image"
    python = f"{sys.version_info.major}{sys.version_info.minor}"
    for image in found:
        tag = IMAGE_TAG.match(image)
        assert tag, f"{path.name}: {image!r} is not a rayproject/ray:X.Y.Z-pyNN-gpu image"
        assert tag["ray"] == pinned_ray_version() == ray.__version__, image
        assert tag["py"] == python, f"{image} vs Python {python} here"


@pytest.mark.parametrize("path", CLUSTER_FILES, ids=lambda p: p.name)
def test_every_command_list_is_explicit_and_raysweep_is_installed(path):
    config = load(path)
    missing = [k for k in COMMAND_LISTS if not isinstance(config.get(k), list)]
    assert not missing, f"{path.name}: set {missing} explicitly (Ray fills them with its defaults)"
    assert config["file_mounts"].get("~/raysweep") == "."
    assert any(re.search(r"pip install .*-e ~/raysweep", c) for c in config["setup_commands"])
    assert any("--autoscaling-config=~/ray_bootstrap_config.yaml" in c
               for c in config["head_start_ray_commands"])


@pytest.mark.parametrize("path", CLUSTER_FILES, ids=lambda p: p.name)
def test_idle_nodes_are_terminated_not_kept(path):
    config = load(path)
    assert config["provider"]["cache_stopped_nodes"] is False
    assert 0 < config["idle_timeout_minutes"] <= 60


def _ports_opened(node, found=None) -> list:
    """Every port a firewall / security-group rule anywhere in the file opens."""
    found = [] if found is None else found
    if isinstance(node, dict):
        if "FromPort" in node or "ToPort" in node:
            found.append((node.get("FromPort"), node.get("ToPort")))
        for rule in node.get("allowed", []) if isinstance(node.get("allowed"), list) else []:
            found.extend(rule.get("ports", ["all"]))
        for value in node.values():
            _ports_opened(value, found)
    elif isinstance(node, list):
        for value in node:
            _ports_opened(value, found)
    return found


@pytest.mark.parametrize("path", CLUSTER_FILES, ids=lambda p: p.name)
def test_nothing_but_ssh_is_opened(path):
    config = load(path)
    assert all(p in ((22, 22), "22") for p in _ports_opened(config)), _ports_opened(config)
    for node_type in config["available_node_types"].values():
        assert "SecurityGroupIds" not in node_type["node_config"], "use Ray's SSH-only group"
    commands = " ".join(config["head_start_ray_commands"] + config["worker_start_ray_commands"])
    assert "--dashboard-host" not in commands and "--ray-client-server-port" not in commands
    assert not any(re.match(r"(-p|--publish)\b", o) for o in config["docker"]["run_options"])


@pytest.mark.parametrize("path", CLUSTER_FILES, ids=lambda p: p.name)
def test_gpu_workers_scale_from_zero_and_the_head_runs_no_trials(path):
    prepared = ray_up_validation(load(path))
    workers = gpu_worker_types(prepared)
    assert workers, f"{path.name}: no GPU worker type"
    assert {name: t["min_workers"] for name, t in workers.items()} == dict.fromkeys(workers, 0)
    head = prepared["available_node_types"][prepared["head_node_type"]]
    assert head["resources"].get("GPU", 0) == 0 and head["resources"].get("CPU") == 0
    assert max(t["max_workers"] for t in workers.values()) <= prepared["max_workers"]


# -- AWS: the rest of `ray up`'s bootstrap, against the local moto server -------------------------

AWS_FILES = [p for p in CLUSTER_FILES if load(p)["provider"]["type"] == "aws"]


@pytest.mark.parametrize("path", AWS_FILES, ids=lambda p: p.name)
def test_aws_bootstrap_creates_an_ssh_only_security_group(path, aws_endpoint, tmp_path,
                                                          monkeypatch):
    import boto3
    from ray.autoscaler._private.commands import _bootstrap_config

    monkeypatch.setenv("HOME", str(tmp_path))  # `ray up` writes its new SSH key under ~/.ssh
    config = load(path)
    config["cluster_name"] = f"test-{uuid.uuid4().hex[:8]}"  # a fresh security group per run
    region = config["provider"]["region"]
    iam = boto3.client("iam", region_name=region)
    for profile in {t["node_config"]["IamInstanceProfile"]["Name"]
                    for t in config["available_node_types"].values()}:
        if profile not in [p["InstanceProfileName"] for p in
                           iam.list_instance_profiles()["InstanceProfiles"]]:
            iam.create_instance_profile(InstanceProfileName=profile)

    resolved = _bootstrap_config(config, no_config_cache=True)

    group_ids = {g for t in resolved["available_node_types"].values()
                 for g in t["node_config"]["SecurityGroupIds"]}
    ec2 = boto3.client("ec2", region_name=region)
    for group in ec2.describe_security_groups(GroupIds=sorted(group_ids))["SecurityGroups"]:
        from_outside = [r for r in group["IpPermissions"] if r.get("IpRanges") or
                        r.get("Ipv6Ranges") or r.get("PrefixListIds")]
        assert [(r["FromPort"], r["ToPort"], r["IpProtocol"]) for r in from_outside] == [
            (22, 22, "tcp")], group["IpPermissions"]
        inside = [r for r in group["IpPermissions"] if r not in from_outside]
        assert all({p["GroupId"] for p in r["UserIdGroupPairs"]} <= group_ids for r in inside)


@pytest.mark.parametrize("path", AWS_FILES, ids=lambda p: p.name)
def test_aws_declared_resources_fit_the_instance_type(path, aws_endpoint):
    """A node type claiming more CPUs or GPUs than its instance has would never be satisfied."""
    import boto3

    config = load(path)
    ec2 = boto3.client("ec2", region_name=config["provider"]["region"])
    for name, node_type in config["available_node_types"].items():
        kind = node_type["node_config"]["InstanceType"]
        info = ec2.describe_instance_types(InstanceTypes=[kind])["InstanceTypes"][0]
        gpus = sum(g["Count"] for g in info.get("GpuInfo", {}).get("Gpus", []))
        assert node_type["resources"].get("GPU", 0) == gpus, f"{name}: {kind} has {gpus} GPUs"
        assert node_type["resources"].get("CPU", 0) <= info["VCpuInfo"]["DefaultVCpus"], name


@pytest.mark.parametrize("path", AWS_FILES, ids=lambda p: p.name)
def test_aws_gpu_workers_are_the_gpu_the_paper_sweeps_plan_for(path, aws_endpoint):
    """The paper sweeps' `gpu:` is the GPU of the shipped workers, with the memory EC2 lists for
    it, and each sweep's planned host bytes per node leave a fifth of the instance's memory."""
    import boto3

    from raysweep.sweep import gpus, memory, plan, spec

    config = load(path)
    ec2 = boto3.client("ec2", region_name=config["provider"]["region"])
    sweeps = [spec.load(p) for p in sorted((ROOT / "sweeps").glob("paper-*.yaml"))]
    for name, node_type in config["available_node_types"].items():
        if not node_type["resources"].get("GPU"):
            continue
        kind = node_type["node_config"]["InstanceType"]
        info = ec2.describe_instance_types(InstanceTypes=[kind])["InstanceTypes"][0]
        (gpu,) = info["GpuInfo"]["Gpus"]
        for sweep in sweeps:
            assert sweep.gpu == gpu["Name"], f"{sweep.name}: gpu {sweep.gpu}, {name}: {kind}"
            assert gpus.GPU_TYPES[sweep.gpu].memory_mib == gpu["MemoryInfo"]["SizeInMiB"]
            host, _, _ = memory.node_host_bytes(sweep, plan.plan(sweep))
            assert host <= 0.8 * info["MemoryInfo"]["SizeInMiB"] * 2 ** 20, (sweep.name, kind)
