"""Prometheus metrics of one app instance, in its own registry so several apps (tests) never clash."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.http_requests = Counter(
            "fabhub_http_requests",
            "HTTP requests by route template and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.http_latency = Histogram(
            "fabhub_http_request_seconds", "HTTP request latency", ["route"], registry=self.registry
        )
        self.job_runs = Counter(
            "fabhub_job_runs", "Scheduled job runs by outcome", ["job", "outcome"], registry=self.registry
        )
        self.database_up = Gauge(
            "fabhub_database_up", "1 when the last health check reached the database", registry=self.registry
        )
