"""Extraction-like volume: per (client, service) window features, an explainable anomaly
model scored with numpy, and the ``extraction_volume`` / ``bulk_upload`` findings.

Run-time modules (features, model, detector) import numpy and msgpack only;
scikit-learn is imported by ``train`` alone (the ``train`` extra).
"""
