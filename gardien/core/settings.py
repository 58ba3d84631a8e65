"""Runtime configuration, read from ``GARDIEN_*`` environment variables."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GARDIEN_", extra="ignore")

    database_url: str = "sqlite:///./var/gardien.db"
    keys_dir: Path = Path("./var/keys")
    exports_dir: Path = Path("./var/exports")
    # Ledger archive bundles written by retention's archive-then-purge (keep them on WORM storage).
    archive_dir: Path = Path("./var/archive")
    # How often `gardien worker` looks for retention policies due on their schedule.
    retention_tick_seconds: float = Field(default=30.0, gt=0, le=86_400)
    instance_name: str = Field(
        default="gardien.local",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9.\-_/]*$",
        description="Names this installation in checkpoint origins and signing keys.",
    )
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = Field(default=1, ge=1, le=64, description="uvicorn worker processes for `gardien serve`")

    audit_max_event_bytes: int = 65_536
    audit_max_batch: int = 1_000
    max_body_bytes: int = 8 * 1024 * 1024
    checkpoint_every_events: int = 1_000
    checkpoint_every_seconds: float = 1.0
    # FULL makes every acknowledged commit survive a power loss, not only a process crash.
    sqlite_synchronous: Literal["OFF", "NORMAL", "FULL", "EXTRA"] = "FULL"
    api_key_cache_seconds: float = 5.0
    # How long a process trusts its cached consent state of a subject: a change recorded through
    # another replica is seen by `is_allowed` here after at most this long.
    consent_cache_seconds: float = Field(default=5.0, ge=0, le=3600)
    group_commit_max: int = 512
    # FastAPI's own OpenTelemetry instrumentation (traces, metrics, logs of each request). Off unless
    # asked for: when a tracer or meter provider is configured in the process it costs every request
    # a span, and even unconfigured it looks the providers up on each one.
    opentelemetry: bool = False
    # `gardien serve`: how long (ms) a thread may hold the GIL while another waits for it. Python's
    # default, 5 ms, is paid by the writer thread after each of its database round trips whenever
    # the event loop is busy.
    gil_switch_ms: float = Field(default=1.0, ge=0.1, le=100)

    # Outgoing e-mail (identity codes of data-subject requests, deadline reminders). No host: no e-mail.
    smtp_host: str | None = None
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_from: str = "gardien@localhost"
    smtp_starttls: bool = False
    smtp_ssl: bool = False
    smtp_timeout: float = Field(default=10.0, gt=0, le=300)
    # Identity codes of data-subject requests: how long one lives and how many tries it allows.
    rights_code_minutes: int = Field(default=15, ge=1, le=1440)
    rights_code_attempts: int = Field(default=5, ge=1, le=20)
    # How long a process trusts its cached `can_process` answer for a subject (as for consent).
    rights_cache_seconds: float = Field(default=5.0, ge=0, le=3600)
    # The admin console's session: it ends after this long without a page, and in any case this
    # long after sign-in.
    console_idle_minutes: int = Field(default=30, ge=1, le=1440)
    console_session_hours: int = Field(default=12, ge=1, le=168)
    # Console passwords: argon2id's cost (RFC 9106's second recommendation: 3 passes over 64 MiB,
    # 4 lanes). A stored hash made with other values is re-made at its user's next sign-in.
    console_password_time_cost: int = Field(default=3, ge=1, le=20)
    console_password_memory_kib: int = Field(default=65_536, ge=8_192, le=4_194_304)
    console_password_parallelism: int = Field(default=4, ge=1, le=64)
    # After this many failed password sign-ins in a row, the address is locked for this long.
    console_lock_failures: int = Field(default=5, ge=1, le=100)
    console_lock_minutes: int = Field(default=15, ge=1, le=1440)
    # Access and portability packages: where their encrypted files live (shared by every replica),
    # how many days a package is kept before it is deleted, and how long one download link is valid.
    rights_packages_dir: Path = Path("./var/packages")
    rights_package_days: int = Field(default=14, ge=1, le=90)
    rights_link_hours: int = Field(default=72, ge=1, le=2160)
