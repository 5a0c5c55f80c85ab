"""How many compute processes the local engine runs: the one rule ``compute_processes="auto"``
follows, decided by ``benchmarks/cores.py`` (whole runs of ``imgfeat.extract``: one process with
every thread against one single-thread process per core). Torch-free."""

from __future__ import annotations

#: runtime -> the core counts at which one single-thread compute process per core made whole
#: runs faster than one process with every thread (benchmarks/cores.py; empty: never)
PER_CORE: dict[str, tuple[int, ...]] = {
    "torch": (),
    "openvino": (),
    "onnxruntime": (),
}


def auto_compute_processes(runtime: str, cores: int, device: str = "cpu") -> int:
    """The compute processes ``auto`` runs: one per core where :data:`PER_CORE` lists this
    runtime at this core count (CPU only), else 1 (the network in the main process)."""
    if device != "cpu" or cores < 2:
        return 1
    return cores if cores in PER_CORE.get(runtime, ()) else 1


def describe_rule() -> str:
    """The rule as one line, for the benchmark to print beside the one it measured."""
    parts = [f"{rt}: {', '.join(map(str, c)) + ' cores' if c else 'never'}"
             for rt, c in PER_CORE.items()]
    return "one process per core: " + "; ".join(parts)
