"""OpenVINO: compiles an exported ``model.onnx`` for the CPU with the run's threads."""

from __future__ import annotations

from pathlib import Path

import numpy as np

#: OpenVINO's inference precision for each imgfeat precision (fp32 is asked for explicitly:
#: OpenVINO would otherwise run bf16 on CPUs that have it)
HINTS = {"fp32": "f32", "bf16": "bf16", "fp16": "f16"}
#: pin the inference threads to cores (OpenVINO's default on Linux). Off: every process of
#: one single-thread compute process per core would pin its thread to the same first core,
#: and the decoding could not use a pinned core (benchmarks/cores.py). OpenVINO's threads do
#: not spin-wait: it has no such setting, its TBB workers sleep when idle.
PINNING = False


class OpenVinoModel:
    """``model.onnx`` compiled by OpenVINO for latency (one stream, every thread on a batch);
    compiled blobs are kept beside the model, so a later start compiles faster."""

    name = "openvino"

    def __init__(self, path: Path, threads: int, precision: str = "fp32"):
        import openvino as ov

        core = ov.Core()
        core.set_property({"CACHE_DIR": str(Path(path).parent / "openvino")})
        self.compiled = core.compile_model(str(path), "CPU", {
            "INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": HINTS[precision],
            "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1, "ENABLE_CPU_PINNING": PINNING})
        self.request = self.compiled.create_infer_request()

    def __call__(self, x: np.ndarray) -> list[np.ndarray]:
        result = self.request.infer(x, share_inputs=True)
        return [np.array(result[out]) for out in self.compiled.outputs]
