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
        # A job's state as this process saw it (runs under another process's lock count as `skipped` here).
        self.job_running = Gauge(
            "fabhub_job_running", "1 while this process runs the job", ["job"], registry=self.registry
        )
        self.job_last_success = Gauge(
            "fabhub_job_last_success_timestamp_seconds",
            "When the job last finished without an error in this process (Unix time)",
            ["job"],
            registry=self.registry,
        )
        self.job_last_failure = Gauge(
            "fabhub_job_last_failure_timestamp_seconds",
            "When the job last failed in this process (Unix time)",
            ["job"],
            registry=self.registry,
        )
        self.job_duration = Gauge(
            "fabhub_job_last_duration_seconds",
            "How long the job's last run in this process took, failed or not",
            ["job"],
            registry=self.registry,
        )
        # Read from the database at each scrape: the outbox and its messages are every process's.
        self.outbox_waiting = Gauge(
            "fabhub_outbox_waiting_events", "Outbox events not yet turned into messages", registry=self.registry
        )
        self.notifications = Gauge(
            "fabhub_notifications",
            "Notification messages by status (pending, sent, failed)",
            ["status"],
            registry=self.registry,
        )
        self.database_up = Gauge(
            "fabhub_database_up", "1 when the last health check reached the database", registry=self.registry
        )
