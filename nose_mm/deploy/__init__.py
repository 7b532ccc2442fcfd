"""Deployment: ONNX export of a config's model, its check, and the deployed runtimes.

Modules: ``onnx_export`` (export, graph node counts, the onnxruntime check),
``export`` (a config + checkpoint to a described, checked ONNX file:
``tools/deploy/export.py``), ``runtimes`` (a model as one timed forward in
torch, torch.compile, onnxruntime or OpenVINO: ``tools/benchmark.py --runtime``).
Usage and the stack notes: ``docs/deploy.md``.
"""
from .export import ExportResult, export_config, preprocessing, sidecar_path
from .onnx_export import (ATOL, OPSET, RTOL, CheckResult, ExportCheckError, attention_nodes,
                          check_onnx, export_onnx, read_metadata)

__all__ = [
    'ExportResult', 'export_config', 'preprocessing', 'sidecar_path', 'ATOL', 'OPSET', 'RTOL',
    'CheckResult', 'ExportCheckError', 'attention_nodes', 'check_onnx', 'export_onnx',
    'read_metadata'
]
