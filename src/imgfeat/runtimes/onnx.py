"""ONNX Runtime: runs an exported ``model.onnx`` on the CPU with the run's threads."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import ConfigError

#: let the session's intra-op threads spin-wait for work after a run (ONNX Runtime's default);
#: off, they sleep and leave the cores to the decoding between batches (benchmarks/cores.py)
SPINNING = False


class OnnxRuntimeModel:
    """``model.onnx`` in an ONNX Runtime session: float32 NCHW batches in, tap maps out."""

    name = "onnxruntime"

    def __init__(self, path: Path, threads: int, precision: str = "fp32"):
        import onnxruntime as ort

        if precision != "fp32":
            raise ConfigError(f"onnxruntime runs fp32 on CPU, not {precision}: use --precision "
                              f"fp32 or --runtime openvino")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        opts.add_session_config_entry("session.intra_op.allow_spinning",
                                      "1" if SPINNING else "0")
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name

    def __call__(self, x: np.ndarray) -> list[np.ndarray]:
        return self.session.run(None, {self.input: x})
