"""Telemetry store: samples and device states in TimescaleDB (or plain PostgreSQL), written in batches
by binary COPY, read back as latest values, ranges, buckets and state timelines."""

from telemetry.model import CANONICAL_STATES, Quality, Sample
from telemetry.writer import BatchWriter, WriteResult

__all__ = ["CANONICAL_STATES", "BatchWriter", "Quality", "Sample", "WriteResult"]
