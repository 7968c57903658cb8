"""Settings read from the environment (and `.env`), validated once at start-up.

Names follow the contract in DESIGN.md. An invalid value raises `ConfigError`
whose message names the variable and the accepted form; the CLI turns it into
one line on standard error and exit status 2.

A provider's settings are declared by its module (`carriers/<code>.py`, its `PROVIDER`
spec): its credentials, `<CODE>_BASE_URL`, `<CODE>_MAX_CONCURRENCY`, `<CODE>_RATE_LIMIT` and
`<CODE>_QUOTA` with their defaults, and its own options (`USPS_API_VERSION`, `USPS_BATCH_SIZE`).
`Settings` is `CommonSettings` plus those fields, one set for every provider in
`carriers/providers.py`; code reads them through the spec (`carriers.registry.credential`,
`connection`, `options`, `budget`), never by a provider's name.
"""

from __future__ import annotations

from datetime import timedelta
from functools import lru_cache
from ipaddress import ip_network
from typing import TYPE_CHECKING, Annotated, Any, Final, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    SecretStr,
    ValidationError,
    create_model,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from pytimeparse.timeparse import timeparse as parse_timespan
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from parcelwatch.carriers.providers import PROVIDERS
from parcelwatch.carriers.quotas import parse_quota

__all__ = [
    "LOOPBACK_HOSTS",
    "CommonSettings",
    "ConfigError",
    "Settings",
    "get_settings",
    "load_settings",
    "parse_duration",
]

DURATION_FORM = "a duration such as 90s, 5m, 1h or 1h30m (or plain seconds)"


class ConfigError(Exception):
    """The environment holds a value parcelwatch cannot run with."""


def parse_duration(value: object) -> timedelta:
    """Parse `90s`, `5m`, `1h`, `1h30m`, a number of seconds, or a timedelta."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=value)
    if isinstance(value, str):
        text = value.strip()
        seconds = float(text) if _is_number(text) else parse_timespan(text.replace(" ", ""))
        if seconds is not None:
            return timedelta(seconds=seconds)
    raise ValueError(f"expected {DURATION_FORM}")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _positive(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise ValueError(f"must be greater than zero; expected {DURATION_FORM}")
    return value


def _not_negative(value: timedelta) -> timedelta:
    if value < timedelta(0):
        raise ValueError(f"must not be negative; expected {DURATION_FORM}")
    return value


def _split_list(value: object) -> object:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


def _database_url(value: str) -> str:
    try:
        url = make_url(value)
    except ArgumentError:
        raise ValueError(
            "expected a URL such as sqlite:///./parcelwatch.db or "
            "postgresql://user:password@host:5432/dbname"
        ) from None
    if url.get_backend_name() not in ("sqlite", "postgresql"):
        raise ValueError("only sqlite:/// and postgresql:// URLs are supported")
    return value


def _lower(value: object) -> object:
    return value.strip().lower() if isinstance(value, str) else value


def _host_names(value: list[str]) -> list[str]:
    """Host names as the Host header carries them, without a port: `example.com`,
    `*.example.com` (any subdomain), `*` (any host), `::1` (brackets optional)."""
    names = []
    for item in value:
        name = item.strip().lower()
        if name.startswith("[") and name.endswith("]"):
            name = name[1:-1]
        if not name or "/" in name or " " in name or (name.count(":") == 1):
            raise ValueError(
                f"'{item}' is not a host name: list names such as parcelwatch.example.com, "
                "*.example.com or 127.0.0.1, without scheme, port or path (or * for any host)"
            )
        names.append(name)
    return names


def _http_url(value: str) -> str:
    if not value.startswith(("http://", "https://")):
        raise ValueError("expected an http:// or https:// URL")
    return value.rstrip("/")


def _networks(value: list[str]) -> list[str]:
    """IP addresses or networks (`10.0.0.5`, `172.16.0.0/12`, `::1`), normalized."""
    networks = []
    for item in value:
        try:
            networks.append(str(ip_network(item.strip(), strict=False)))
        except ValueError:
            raise ValueError(
                f"'{item}' is not an IP address or network: list the reverse proxies' "
                "addresses such as 127.0.0.1, 10.0.0.5 or 172.16.0.0/12"
            ) from None
    return networks


def _header_name(value: str) -> str:
    name = value.strip()
    if not name or not all(c.isalnum() or c in "-_" for c in name):
        raise ValueError("expected an HTTP header name such as Remote-User")
    return name


def _origins(value: list[str]) -> list[str]:
    """Web origins (`https://ha.example.com`, `http://192.168.1.5:8123`): scheme, host and
    optional port, nothing else."""
    origins = []
    for item in value:
        parts = urlsplit(item.strip())
        try:
            parts.port  # noqa: B018  # raises on a malformed port
        except ValueError:
            parts = parts._replace(netloc="")
        if (
            parts.scheme not in ("http", "https")
            or not parts.hostname
            or parts.path not in ("", "/")
            or parts.query
        ):
            raise ValueError(
                f"'{item}' is not a web origin: list origins such as https://ha.example.com or "
                "http://192.168.1.5:8123 (scheme, host and port, no path)"
            )
        origins.append(f"{parts.scheme}://{parts.netloc.lower()}")
    return origins


def _quota(value: str) -> str:
    """A `<CARRIER>_QUOTA` value (`carriers/quotas.py`), kept as written once it parses."""
    parse_quota(value)
    return value.strip()


Duration = Annotated[timedelta, BeforeValidator(parse_duration), AfterValidator(_positive)]
DurationOrZero = Annotated[
    timedelta, BeforeValidator(parse_duration), AfterValidator(_not_negative)
]
CommaList = Annotated[list[str], NoDecode, BeforeValidator(_split_list)]
Rate = Annotated[float, Field(gt=0)]
Quota = Annotated[str, AfterValidator(_quota)]
Concurrency = Annotated[int, Field(ge=1, le=1000)]
HttpUrl = Annotated[str, AfterValidator(_http_url)]
HostList = Annotated[list[str], NoDecode, BeforeValidator(_split_list), AfterValidator(_host_names)]
NetworkList = Annotated[
    list[str], NoDecode, BeforeValidator(_split_list), AfterValidator(_networks)
]
OriginList = Annotated[list[str], NoDecode, BeforeValidator(_split_list), AfterValidator(_origins)]

# Always answered when ALLOWED_HOSTS is not set: the names of this machine's loopback.
LOOPBACK_HOSTS: Final = ("localhost", "127.0.0.1", "::1")


class CommonSettings(BaseSettings):
    """Every setting parcelwatch reads but the providers' own; see the README's
    configuration table."""

    # `VAR=` (empty) means unset: `ADMIN_API_KEY=` disables the admin API instead of making
    # the empty string its token, and `USPS_CLIENT_ID=` leaves USPS unconfigured.
    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
        env_ignore_empty=True,
    )

    # server and storage
    database_url: Annotated[str, AfterValidator(_database_url)] = "sqlite:///./parcelwatch.db"
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    # API processes of `serve` (the name gunicorn and uvicorn read); the updater runs in one.
    web_concurrency: int = Field(default=1, ge=1, le=64)
    log_level: Annotated[Literal["debug", "info", "warning", "error"], BeforeValidator(_lower)] = (
        "info"
    )
    log_format: Annotated[Literal["console", "json"], BeforeValidator(_lower)] = "console"
    admin_api_key: SecretStr | None = None
    # The Host names the server answers (DNS rebinding protection); empty: LOOPBACK_HOSTS.
    allowed_hosts: HostList = Field(default_factory=list)
    # Where people reach the server (https://parcelwatch.example.com); its host is allowed
    # and its origin is this server's own for the same-origin checks.
    public_url: HttpUrl | None = None
    # Other sites whose pages may call the REST API from a browser (CORS); empty: none.
    cors_origins: OriginList = Field(default_factory=list)
    # Reverse proxies whose X-Forwarded-* headers (and AUTH_PROXY_HEADER) are believed.
    trusted_proxies: NetworkList = Field(default_factory=list)
    # The header a trusted proxy names the signed-in person in (Authelia, authentik: Remote-User).
    auth_proxy_header: Annotated[str, AfterValidator(_header_name)] | None = None
    # Delivered shipments leave their people's lists after this many days (0: never).
    auto_archive_days: int = Field(default=7, ge=0, le=3650)
    # A dashboard session ends after this long without use.
    session_idle_timeout: Duration = timedelta(days=7)
    # When set, /metrics wants `Authorization: Bearer <METRICS_TOKEN>`.
    metrics_token: SecretStr | None = None
    parcelwatch_demo: bool | None = None
    redis_url: str | None = None
    # Hour and day quota windows are spent evenly across the window (sync/budgets.py).
    quota_pacing: bool = True

    # the sync engine
    auto_update_enabled: bool = True
    auto_update_cutoff_days: int = Field(default=30, ge=1)
    auto_update_batch_size: int = Field(default=10, ge=1, le=500)
    auto_update_max_retries: int = Field(default=10, ge=1)
    auto_update_expire_days: int = Field(default=14, ge=1)
    update_interval: Duration = timedelta(hours=1)
    auto_update_batch_timeout: Duration = timedelta(seconds=60)
    auto_update_individual_timeout: Duration = timedelta(seconds=30)
    tracking_api_provider: Annotated[
        Literal["auto", "direct", "shipengine"], BeforeValidator(_lower)
    ] = "auto"

    # ShipEngine push webhooks (the provider's own settings come from its module)
    shipengine_webhook_secret: SecretStr | None = None
    shipengine_jwks_url: HttpUrl = "https://api.shipengine.com/jwks"

    # health and alerts
    health_stale_hours: int = Field(default=24, ge=1)
    alert_email_enabled: bool = False
    alert_email_recipients: CommaList = Field(default_factory=list)
    alert_email_from: str = "parcelwatch@localhost"
    alert_smtp_host: str = "localhost"
    alert_smtp_port: int = Field(default=587, ge=1, le=65535)
    alert_smtp_user: str | None = None
    alert_smtp_pass: SecretStr | None = None
    alert_slack_enabled: bool = False
    alert_slack_webhook_url: SecretStr | None = None
    alert_slack_channel: str | None = None
    alert_webhook_enabled: bool = False
    alert_webhook_url: str | None = None
    alert_webhook_secret: SecretStr | None = None
    alert_apprise_urls: CommaList = Field(default_factory=list)
    alert_cooldown: Duration = timedelta(hours=1)
    alerts_in_server: bool = False

    # notifications to people (their channels are theirs; email goes through ALERT_SMTP_*)
    notify_enabled: bool = True  # the dispatcher runs in `serve` (and in workers)
    notify_email_from: str | None = None  # default: ALERT_EMAIL_FROM
    notify_stuck_days: int = Field(default=4, ge=1, le=365)
    notify_group_window: DurationOrZero = timedelta(minutes=2)
    notify_retry_for: Duration = timedelta(hours=24)
    notify_disable_after: int = Field(default=20, ge=1, le=10_000)
    notify_allow_private_networks: bool = False
    # Health warns when the oldest notification still pending is older than this.
    notify_pending_warn_after: Duration = timedelta(minutes=15)

    @model_validator(mode="after")
    def _one_per_second_rate(self) -> CommonSettings:
        """`<CARRIER>_RATE_LIMIT` is the per-second window: a `<CARRIER>_QUOTA` naming another
        one beside an explicit `<CARRIER>_RATE_LIMIT` is ambiguous, so it is refused."""
        for spec in PROVIDERS:
            quota = getattr(self, spec.quota_setting, "")
            second = [w for w in parse_quota(quota) if w.seconds == 1]
            rate = getattr(self, spec.rate_setting, None)
            if second and spec.rate_setting in self.model_fields_set and rate != second[0].amount:
                raise ValueError(
                    f"{spec.quota_setting.upper()} names a per-second window ({second[0].text}) "
                    f"and {spec.rate_setting.upper()}={rate:g} names another: set one of them"
                )
        return self

    @property
    def sqlalchemy_url(self) -> str:
        """The URL with the driver parcelwatch uses (psycopg 3 for PostgreSQL)."""
        url = make_url(self.database_url)
        if url.get_backend_name() == "postgresql":
            url = url.set(drivername="postgresql+psycopg")
        return url.render_as_string(hide_password=False)

    @property
    def trusted_hosts(self) -> list[str]:
        """The Host names requests may carry: ALLOWED_HOSTS (else the loopback names), plus
        the host of PUBLIC_URL."""
        hosts = list(self.allowed_hosts or LOOPBACK_HOSTS)
        public_host = urlsplit(self.public_url).hostname if self.public_url else None
        if public_host and public_host not in hosts:
            hosts.append(public_host)
        return hosts


def _provider_fields() -> dict[str, Any]:
    """The settings every provider declares, as pydantic field definitions."""
    fields: dict[str, Any] = {}
    for spec in PROVIDERS:
        for credential in spec.credentials:
            kind = SecretStr | None if credential.secret else str | None
            fields[credential.setting] = (kind, None)
        fields[spec.base_url_setting] = (HttpUrl, spec.base_url)
        fields[spec.concurrency_setting] = (Concurrency, spec.max_concurrency)
        fields[spec.rate_setting] = (Rate, spec.rate_limit)
        fields[spec.quota_setting] = (Quota, spec.quota)
        for option in spec.options:
            fields[option.setting] = (option.annotation, option.default)
    return fields


if TYPE_CHECKING:  # the provider fields exist at run time only: read them through the spec
    Settings = CommonSettings
else:
    Settings = create_model(
        "Settings",
        __base__=CommonSettings,
        __module__=__name__,
        __doc__="The common settings plus every provider's own (see the module docstring).",
        **_provider_fields(),
    )


def load_settings(**overrides: Any) -> Settings:
    """Read and validate the settings, raising `ConfigError` with one readable line."""
    try:
        return Settings(**overrides)
    except ValidationError as error:
        raise ConfigError(_describe(error)) from None


def _describe(error: ValidationError) -> str:
    problems = []
    for item in error.errors():
        message = str(item["msg"]).removeprefix("Value error, ")
        if not item["loc"]:  # a check across settings names its variables itself
            problems.append(message)
            continue
        variable = str(item["loc"][0]).upper()
        value = item.get("input")
        shown = "" if _looks_secret(variable) or isinstance(value, dict) else f"={value}"
        problems.append(f"{variable}{shown}: {message}")
    return "invalid configuration: " + "; ".join(problems)


def _looks_secret(variable: str) -> bool:
    return any(word in variable for word in ("SECRET", "PASS", "KEY", "TOKEN", "DATABASE_URL"))


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (tests build their own with `load_settings`)."""
    return load_settings()
