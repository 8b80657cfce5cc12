"""Exporters for fitted synthaug generators (downstream of ``synthaug.models`` and the card)."""

from .onnx import PARITY_TOLERANCE, ExportResult, export

__all__ = ["export", "ExportResult", "PARITY_TOLERANCE"]
