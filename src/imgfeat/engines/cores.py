"""How many compute processes the local engine runs: the one rule ``compute_processes="auto"``
follows, decided by ``benchmarks/cores.py`` (whole runs of ``imgfeat.extract``: one process with
every thread against one single-thread process per core). Torch-free."""

from __future__ import annotations

#: runtime -> the core counts at which one single-thread compute process per core made whole
#: runs faster than one process with every thread (empty: never). Measured on 2 AVX2 cores,
#: whole runs of 2,292 USPtex images / 512 large JPEGs with the packaged Lite0 weights, the
#: processes decoding their own batches: OpenVINO 1.20x / 1.21x and ONNX Runtime 1.27x / 1.41x
#: (benchmarks/cores.py); torch 0.82x / 1.14x (benchmarks/runtimes.py): its two threads
#: already keep both cores busy on light images
PER_CORE: dict[str, tuple[int, ...]] = {
    "torch": (),
    "openvino": (2,),
    "onnxruntime": (2,),
}


#: ``auto`` starts compute processes only for runs of at least this many images: starting them
#: costs seconds (the forkserver imports torch), which a short run does not win back (a
#: one-image run with ONNX Runtime: 6.0 s with two processes, 3.9 s with OpenVINO in one)
MIN_IMAGES = 500


def auto_compute_processes(runtime: str, cores: int, device: str = "cpu",
                           images: int | None = None, workers: int = 0) -> int:
    """The compute processes ``auto`` runs: one per core where :data:`PER_CORE` lists this
    runtime at this core count (CPU only, runs of at least :data:`MIN_IMAGES` images, no
    decode ``workers``: the rule was measured with the processes decoding their own batches),
    else 1 (the network in the main process)."""
    if (device != "cpu" or cores < 2 or workers
            or (images is not None and images < MIN_IMAGES)):
        return 1
    return cores if cores in PER_CORE.get(runtime, ()) else 1


def describe_rule() -> str:
    """The rule as one line, for the benchmark to print beside the one it measured."""
    parts = [f"{rt}: {', '.join(map(str, c)) + ' cores' if c else 'never'}"
             for rt, c in PER_CORE.items()]
    return "one process per core: " + "; ".join(parts)
