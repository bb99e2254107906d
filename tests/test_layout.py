"""The package layout of docs/design.md: imports run one way between packages, the pure packages
import neither torch nor Ray, Ray stays in the modules that build Tune runs, and a wheel carries
the shipped sweeps so the main command finds its default from any directory."""

import ast
import os
import pathlib
import subprocess
import sys
import venv

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "raysweep"

# Package -> the packages it may import (docs/design.md, "The packages").
MAY_IMPORT = {
    "errors": set(),
    "store": {"errors"},
    "laws": {"errors", "store"},
    "data": {"errors"},
    "train": {"errors"},
    "sweep": {"errors", "data", "train", "laws"},   # laws: the forms a sweep declares
    "run": {"errors", "data", "train", "sweep", "store"},
    "report": {"errors", "store", "laws"},
    "adaptive": {"errors", "store", "laws", "data", "train", "sweep", "run"},
    "hparams": {"errors", "store", "laws", "data", "train", "sweep", "run"},
}
COMMANDS = {"cli", "grid", "fit", "trial"}  # top-level command modules; may import anything
NO_TORCH_NOR_RAY = {"errors", "store", "laws", "report"}
RAY_MODULES = {"run/cluster.py", "run/executor.py", "run/trackers.py", "hparams/search.py"}


def modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        yield path.relative_to(PACKAGE).as_posix(), ast.parse(path.read_text())


def imported(tree: ast.Module) -> set[str]:
    """Every module a file imports, at any depth (function-level imports count too)."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names |= {f"{node.module}.{a.name}" for a in node.names}
    return names


def owner(rel: str) -> str:
    """The package of a file under raysweep/ ('sweep' for sweep/plan.py; 'grid' for grid.py)."""
    return rel.split("/")[0].removesuffix(".py")


def raysweep_packages(names: set[str]) -> set[str]:
    """The raysweep packages among imported names ('raysweep.sweep.plan' -> 'sweep')."""
    return {n.split(".")[1] for n in names if n.startswith("raysweep.") and n.count(".") >= 1}


@pytest.mark.parametrize("rel, tree", list(modules()), ids=[r for r, _ in modules()])
def test_imports_run_one_way(rel, tree):
    pkg = owner(rel)
    if pkg in COMMANDS or pkg == "__init__" or rel.endswith("/__main__.py"):
        return  # the commands (package __main__s too) may import anything
    assert pkg in MAY_IMPORT, f"raysweep/{rel}: package {pkg!r} is not in docs/design.md's table"
    used = raysweep_packages(imported(tree)) - {pkg, "__version__"}
    wrong = used - MAY_IMPORT[pkg]
    assert not wrong, f"raysweep/{rel} imports {sorted(wrong)}; {pkg} may import " \
                      f"{sorted(MAY_IMPORT[pkg]) or 'nothing of raysweep'}"
    assert not used & COMMANDS, f"raysweep/{rel} imports a command module {sorted(used & COMMANDS)}"


@pytest.mark.parametrize("rel, tree", list(modules()), ids=[r for r, _ in modules()])
def test_torch_and_ray_stay_at_the_edges(rel, tree):
    roots = {n.split(".")[0] for n in imported(tree)}
    if owner(rel) in NO_TORCH_NOR_RAY:
        assert not roots & {"torch", "torchvision", "timm", "ray"}, f"raysweep/{rel}"
    if rel not in RAY_MODULES:
        assert "ray" not in roots, f"raysweep/{rel} imports Ray; only {sorted(RAY_MODULES)} may"


def test_the_layering_check_sees_a_violation(tmp_path):
    # The checks read real import statements: one that breaks the order is caught.
    tree = ast.parse("from raysweep.run import executor\nimport ray.tune\n")
    assert raysweep_packages(imported(tree)) == {"run"} and "run" not in MAY_IMPORT["laws"]
    assert "ray" in {n.split(".")[0] for n in imported(tree)}


def test_a_wheel_runs_the_default_dry_run_from_anywhere(tmp_path):
    """pip install of a built wheel (not the checkout) finds the shipped default sweep."""
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(wheels), str(ROOT)], check=True, timeout=300)
    (wheel,) = wheels.glob("raysweep-*.whl")
    env_dir = tmp_path / "venv"
    # The new environment sees this one's packages (torch, ray, ...) but raysweep only as the
    # wheel installs it: nothing of the checkout is on its path.
    venv.create(env_dir, system_site_packages=True, with_pip=False)
    python = env_dir / "bin" / "python"
    where = "import sysconfig; print(sysconfig.get_path('purelib'))"
    site = subprocess.run([str(python), "-c", where], capture_output=True, text=True,
                          check=True).stdout
    pth = pathlib.Path(site.strip()) / "parent.pth"
    pth.write_text("\n".join(p for p in sys.path if p.endswith("site-packages")) + "\n")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target",
                    site.strip(), str(wheel)], check=True, timeout=300)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    run = subprocess.run([str(python), "-c", "import raysweep, sys; print(raysweep.__file__)"],
                         check=False, cwd=elsewhere, env=env, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0 and str(ROOT) not in run.stdout, run.stdout + run.stderr
    run = subprocess.run([str(python), "-m", "raysweep.grid", "--dry-run"], check=False,
                         cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("200 trials: 32 pretrain, 96 finetune, 72 distill"), run.stdout
