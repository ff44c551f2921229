"""One frozen settings tree, read from the environment once and parsed strictly.

A typo in an environment variable should stop the process at start-up, not surface as a
half-working feature days later, so every value is validated here.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


class SettingsError(ValueError):
    pass


def _int(env: dict[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise SettingsError(f"{name} must be a whole number, got {raw!r}") from exc


def _bool(env: dict[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in {"1", "true", "yes", "on"}:
        return True
    if raw.lower() in {"0", "false", "no", "off"}:
        return False
    raise SettingsError(f"{name} must be true or false, got {raw!r}")


@dataclass(frozen=True)
class SecuritySettings:
    secret_key: str
    session_idle_minutes: int = 30
    session_absolute_hours: int = 12
    login_max_failures_account: int = 5
    login_max_failures_ip: int = 20
    login_window_minutes: int = 15
    argon2_memory_kib: int = 19 * 1024
    argon2_time_cost: int = 2
    argon2_parallelism: int = 1
    cookie_secure: bool = False
    max_form_bytes: int = 1_000_000


@dataclass(frozen=True)
class KycSettings:
    document_key: bytes = field(repr=False)  # AES-256 key for documents at rest
    documents_dir: Path
    max_upload_bytes: int = 10 * 1_048_576
    expiry_reminder_days: int = 30  # remind the client and compliance this long before an ID expires


@dataclass(frozen=True)
class PaymentsSettings:
    """The card/e-wallet provider (in development: the simulator, `fxcrm pay-sim`) and the chain feed.

    `webhook_secret` signs the provider's webhooks (Standard Webhooks, `whsec_…`); `chain_url` is
    the simulated chain's base URL (served by the same simulator unless set)."""

    sim_url: str = "http://127.0.0.1:4480"
    sim_api_key: str = field(default="sk_test_fxcrm", repr=False)
    webhook_secret: str = field(default="", repr=False)
    sim_enabled: bool = True  # `fxcrm run` starts the simulator
    chain_url: str = "http://127.0.0.1:4480"
    stale_minutes: int = 15  # ask the provider about deposits pending longer (missed webhooks)


@dataclass(frozen=True)
class Settings:
    env: str
    database_url: str | None
    host: str
    port: int
    smtp_url: str | None
    mail_from: str
    base_url: str
    var_dir: Path
    security: SecuritySettings
    kyc: KycSettings
    mt5_sim_enabled: bool = True
    template_reload: bool = False
    allowed_origins: tuple[str, ...] = field(default_factory=tuple)
    dormant_after_days: int = 90  # an active client without a login this long becomes dormant
    api_rate_limit_per_minute: int = 120
    default_desk: str = ""  # the desk for leads no routing rule matches; empty: the unassigned pool
    first_contact_sla_minutes: int = 60
    lead_idle_days: int = 3  # an owned lead untouched this long goes back to its desk's pool
    screening_threshold: int = 85  # sanctions hits scoring at least this (0-100) open a compliance case
    payments: PaymentsSettings = field(default_factory=PaymentsSettings)

    @property
    def production(self) -> bool:
        return self.env == "production"


def _secret_key(env: dict[str, str], app_env: str, var_dir: Path) -> str:
    key = env.get("SECRET_KEY", "")
    if key:
        if len(key) < 32:
            raise SettingsError("SECRET_KEY must be at least 32 characters")
        return key
    if app_env == "production":
        raise SettingsError("SECRET_KEY is required when APP_ENV=production")
    path = var_dir / "secret_key"
    if path.exists():
        return path.read_text().strip()
    var_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    path.write_text(key)
    path.chmod(0o600)
    return key


def _kyc(env: dict[str, str], app_env: str, var_dir: Path, secret_key: str) -> KycSettings:
    from app.kyc.storage import StorageError, derive_key, parse_key

    raw_key = env.get("DOCUMENT_KEY", "")
    if raw_key:
        try:
            key = parse_key(raw_key)
        except StorageError as exc:
            raise SettingsError(str(exc)) from None
    elif app_env == "production":
        raise SettingsError(
            "DOCUMENT_KEY is required when APP_ENV=production (32 random bytes, base64; "
            "`python -c 'import base64,os; print(base64.urlsafe_b64encode(os.urandom(32)).decode())'`)"
        )
    else:
        key = derive_key(secret_key)
    max_mb = _int(env, "KYC_MAX_UPLOAD_MB", 10)
    if not 1 <= max_mb <= 50:
        raise SettingsError(f"KYC_MAX_UPLOAD_MB must be between 1 and 50, got {max_mb}")
    reminder = _int(env, "KYC_EXPIRY_REMINDER_DAYS", 30)
    if not 1 <= reminder <= 365:
        raise SettingsError(f"KYC_EXPIRY_REMINDER_DAYS must be between 1 and 365, got {reminder}")
    documents_dir = Path(env.get("DOCUMENTS_DIR") or var_dir / "documents")
    if (documents_dir.resolve() == ROOT / "static") or (ROOT / "static") in documents_dir.resolve().parents:
        raise SettingsError("DOCUMENTS_DIR must not be inside static/: documents are never public files")
    return KycSettings(
        document_key=key,
        documents_dir=documents_dir,
        max_upload_bytes=max_mb * 1_048_576,
        expiry_reminder_days=reminder,
    )


def _url(env: dict[str, str], name: str, default: str) -> str:
    raw = (env.get(name) or default).strip().rstrip("/")
    if not raw.startswith(("http://", "https://")) or len(raw) < 10 or any(c.isspace() for c in raw):
        raise SettingsError(f"{name} must be an http(s):// URL, got {raw!r}")
    return raw


def _payments(env: dict[str, str], app_env: str, secret_key: str) -> PaymentsSettings:
    import base64
    import hashlib

    sim_url = _url(env, "PAYSIM_URL", "http://127.0.0.1:4480")
    api_key = env.get("PAYSIM_API_KEY", "")
    secret = env.get("PAYSIM_WEBHOOK_SECRET", "")
    if api_key and (len(api_key) < 8 or any(c.isspace() for c in api_key)):
        raise SettingsError("PAYSIM_API_KEY must be at least 8 characters without spaces")
    if secret:
        try:
            raw = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
        except ValueError:
            raise SettingsError("PAYSIM_WEBHOOK_SECRET must be whsec_ followed by base64") from None
        if not secret.startswith("whsec_") or not 24 <= len(raw) <= 64:
            raise SettingsError("PAYSIM_WEBHOOK_SECRET must be whsec_ + base64 of 24 to 64 bytes")
    else:  # derived from SECRET_KEY (as secret as it), so the app and the simulator agree without setup
        digest = hashlib.sha256(f"paysim-webhook:{secret_key}".encode()).digest()
        secret = "whsec_" + base64.b64encode(digest).decode()
    stale = _int(env, "PAYSIM_STALE_MINUTES", 15)
    if not 1 <= stale <= 1440:
        raise SettingsError(f"PAYSIM_STALE_MINUTES must be between 1 and 1440, got {stale}")
    return PaymentsSettings(
        sim_url=sim_url,
        sim_api_key=api_key
        or "sk_test_" + hashlib.sha256(f"paysim-key:{secret_key}".encode()).hexdigest()[:24],
        webhook_secret=secret,
        sim_enabled=_bool(env, "PAYSIM_ENABLED", app_env != "production"),
        chain_url=_url(env, "CHAIN_URL", sim_url),
        stale_minutes=stale,
    )


def load_settings(environ: dict[str, str] | None = None) -> Settings:
    env = dict(os.environ if environ is None else environ)
    app_env = env.get("APP_ENV", "development") or "development"
    if app_env not in {"development", "production"}:
        raise SettingsError(f"APP_ENV must be development or production, got {app_env!r}")
    var_dir = Path(env.get("FXCRM_VAR_DIR") or ROOT / "var")
    host = env.get("HOST") or "127.0.0.1"
    port = _int(env, "PORT", 8000)
    if not 0 < port < 65536:
        raise SettingsError(f"PORT must be between 1 and 65535, got {port}")
    smtp_url = env.get("SMTP_URL") or None
    if smtp_url and not smtp_url.startswith(("smtp://", "smtps://")):
        raise SettingsError("SMTP_URL must look like smtp://user:pass@host:port or smtps://…")
    if app_env == "production" and not smtp_url:
        raise SettingsError("SMTP_URL is required when APP_ENV=production")
    base_url = (env.get("BASE_URL") or f"http://{host}:{port}").rstrip("/")
    dormant_after_days = _int(env, "DORMANT_AFTER_DAYS", 90)
    if not 1 <= dormant_after_days <= 3650:
        raise SettingsError(f"DORMANT_AFTER_DAYS must be between 1 and 3650, got {dormant_after_days}")
    origins = tuple(o.strip().rstrip("/") for o in env.get("ALLOWED_ORIGINS", "").split(",") if o.strip())
    api_rate_limit = _int(env, "API_RATE_LIMIT_PER_MINUTE", 120)
    if api_rate_limit < 1:
        raise SettingsError(f"API_RATE_LIMIT_PER_MINUTE must be at least 1, got {api_rate_limit}")
    default_desk = (env.get("DEFAULT_DESK") or "").strip()
    if len(default_desk) > 100:
        raise SettingsError("DEFAULT_DESK must be a desk name of at most 100 characters")
    sla_minutes = _int(env, "FIRST_CONTACT_SLA_MINUTES", 60)
    if not 1 <= sla_minutes <= 10080:
        raise SettingsError(f"FIRST_CONTACT_SLA_MINUTES must be between 1 and 10080, got {sla_minutes}")
    lead_idle_days = _int(env, "LEAD_IDLE_DAYS", 3)
    if not 1 <= lead_idle_days <= 365:
        raise SettingsError(f"LEAD_IDLE_DAYS must be between 1 and 365, got {lead_idle_days}")
    screening_threshold = _int(env, "SCREENING_THRESHOLD", 85)
    if not 50 <= screening_threshold <= 100:
        raise SettingsError(f"SCREENING_THRESHOLD must be between 50 and 100, got {screening_threshold}")
    secret_key = _secret_key(env, app_env, var_dir)
    security = SecuritySettings(
        secret_key=secret_key,
        session_idle_minutes=_int(env, "SESSION_IDLE_MINUTES", 30),
        session_absolute_hours=_int(env, "SESSION_ABSOLUTE_HOURS", 12),
        cookie_secure=_bool(env, "COOKIE_SECURE", app_env == "production"),
    )
    return Settings(
        env=app_env,
        database_url=env.get("DATABASE_URL") or None,
        host=host,
        port=port,
        smtp_url=smtp_url,
        mail_from=env.get("MAIL_FROM") or "FX CRM <no-reply@fxcrm.local>",
        base_url=base_url,
        var_dir=var_dir,
        security=security,
        kyc=_kyc(env, app_env, var_dir, secret_key),
        mt5_sim_enabled=_bool(env, "MT5_SIM_ENABLED", True),
        template_reload=_bool(env, "TEMPLATE_RELOAD", app_env == "development"),
        allowed_origins=origins or (base_url,),
        dormant_after_days=dormant_after_days,
        api_rate_limit_per_minute=api_rate_limit,
        default_desk=default_desk,
        first_contact_sla_minutes=sla_minutes,
        lead_idle_days=lead_idle_days,
        screening_threshold=screening_threshold,
        payments=_payments(env, app_env, secret_key),
    )


_current: Settings | None = None


def get_settings() -> Settings:
    """The process's settings (read from the environment on first use)."""
    global _current
    if _current is None:
        _current = load_settings()
    return _current


def use_settings(settings: Settings) -> None:
    """Make `settings` the process's settings (create_app and tests call this)."""
    global _current
    _current = settings
