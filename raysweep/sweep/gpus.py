"""The GPU types a sweep can name (`gpu:` in the sweep, `--gpu` on the command line): how much
memory each has, what its bf16 tensor cores peak at, and how torch names it.

Memory is what AWS EC2's DescribeInstanceTypes lists per GPU (MiB; tests/test_cluster.py checks
the shipped cluster's type against it); torch's total_memory for the same card is within ~2 % of
it, and the planner leaves MEMORY_MARGIN of every share unused anyway (sweep/memory.py). The bf16
peaks are the vendors' dense (no sparsity) tensor-core figures; tests/benchmarks/bench_gpu.py
divides the achieved FLOP/s by them. Left out: GPUs without bf16 tensor cores (T4, V100), on
which the loop's bf16 autocast is emulated and the estimate's byte counts would not hold.
"""

from __future__ import annotations

from dataclasses import dataclass

MIB = 2 ** 20


@dataclass(frozen=True)
class GpuType:
    memory_mib: int             # per GPU
    bf16_tflops: float          # dense peak, 1e12 FLOP/s
    torch_names: tuple[str, ...]   # all of these occur in torch.cuda.get_device_name()

    @property
    def memory_bytes(self) -> int:
        return self.memory_mib * MIB


GPU_TYPES: dict[str, GpuType] = {
    "A10G": GpuType(22_888, 70.0, ("A10G",)),           # AWS g5 (NVIDIA lists no A10G sheet)
    "L40S": GpuType(45_776, 362.0, ("L40S",)),          # AWS g6e (before L4: "L4" is in it)
    "L4": GpuType(22_888, 121.0, ("L4",)),              # AWS g6, GCP g2
    "A100-40GB": GpuType(40_960, 312.0, ("A100", "40GB")),   # AWS p4d, GCP a2-highgpu
    "A100-80GB": GpuType(81_920, 312.0, ("A100", "80GB")),   # AWS p4de, GCP a2-ultragpu
    "H100-PCIe": GpuType(81_920, 756.0, ("H100", "PCIe")),
    "H100": GpuType(81_920, 989.0, ("H100",)),          # SXM (AWS p5, GCP a3)
    "H200": GpuType(144_384, 989.0, ("H200",)),         # AWS p5e
}


def gpu_type(name: str, where: str = "gpu") -> GpuType:
    """The table's entry `name`; an unknown name is a ValueError naming the known ones."""
    if name not in GPU_TYPES:
        raise ValueError(f"{where}: unknown GPU type {name!r}; expected one of "
                         f"{', '.join(GPU_TYPES)}")
    return GPU_TYPES[name]


def from_device_name(device_name: str) -> str | None:
    """The table's name for torch's name of a device ("NVIDIA H100 80GB HBM3" -> "H100"): the
    first entry all of whose words occur in it; None for a GPU the table does not know."""
    for name, gpu in GPU_TYPES.items():
        if all(word in device_name for word in gpu.torch_names):
            return name
    return None
