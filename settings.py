"""Settings: a TOML file plus environment overrides -> one validated, read-only object.

Where the file comes from: ``$TRIPACT_CONFIG`` if set, else ``instance/config.toml`` if it exists,
else built-in defaults only. Any key can be overridden from the environment as
``TRIPACT_<SECTION>_<KEY>`` (e.g. ``TRIPACT_SERVER_SECRET_KEY``, ``TRIPACT_DATABASE_URL``); that is the
way to give secrets in production. Every problem is reported as one :class:`SettingsError` naming the key.

Secrets are never defaults in code. In development mode a missing secret is generated once and kept
in ``instance/dev-secrets.toml`` (mode 0600) so sessions and encrypted keys survive restarts; in
production mode a missing secret stops start-up.
"""
from __future__ import annotations

import dataclasses
import math
import os
import secrets
import tomllib
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent


class SettingsError(Exception):
    """A configuration problem; the message names the offending key."""


@dataclass(frozen=True)
class ServerSettings:
    mode: str = "development"
    """"development" or "production"; production refuses to start with a missing secret."""
    host: str = "127.0.0.1"
    """Interface the built-in server binds to."""
    port: int = 8000
    """Port the built-in server listens on."""
    base_url: str = "http://127.0.0.1:8000"
    """Public URL of the site, used in push links and the QR code printed on agreements."""
    secret_key: str = ""
    """Flask session/CSRF key. Secret."""
    instance_path: str = "instance"
    """Folder for the SQLite database, local files and development secrets (relative to the project)."""
    max_upload_mb: int = 10
    """Largest request body accepted (uploads of PDFs and seal images), in MiB."""
    behind_proxy: bool = False
    """Trust one X-Forwarded-For hop (set when running behind nginx)."""


@dataclass(frozen=True)
class DatabaseSettings:
    url: str = ""
    """peewee database URL: sqlite:///path, postgresql://user@host/db, mysql://user@host/db.
    Empty means an SQLite file instance/tripact.db."""


@dataclass(frozen=True)
class StorageSettings:
    backend: str = "local"
    """"local" (a folder) or "s3" (S3-compatible bucket)."""
    path: str = ""
    """Folder for the local backend; empty means instance/files."""
    s3_bucket: str = ""
    s3_endpoint_url: str = ""
    s3_region: str = ""
    s3_access_key: str = ""
    """Secret."""
    s3_secret_key: str = ""
    """Secret."""


def _default_menu() -> list[dict[str, Any]]:
    """The official account's menu; its keys are the ones wechat_bot.replies answers."""
    return [
        {"name": "我的协议", "sub_button": [
            {"type": "click", "name": "协议进度", "key": "MY_AGREEMENT"},
            {"type": "click", "name": "待办事项", "key": "TODO"},
            {"type": "click", "name": "申请签约", "key": "APPLY"}]},
        {"type": "click", "name": "解约", "key": "TERMINATION"},
        {"name": "账号", "sub_button": [
            {"type": "click", "name": "绑定/解绑", "key": "BIND"},
            {"type": "click", "name": "使用帮助", "key": "HELP"}]},
    ]


@dataclass(frozen=True)
class WechatSettings:
    appid: str = "wx_sandbox_appid"
    """Official-account AppID. The default is the local sandbox's."""
    appsecret: str = ""
    """AppSecret. Secret."""
    token: str = ""
    """Token for message signatures. Secret."""
    encoding_aes_key: str = ""
    """43-character EncodingAESKey for safe mode. Secret."""
    message_mode: str = "plain"
    """The 消息加解密方式 chosen in the WeChat console: "plain", "compatible" or "safe". In compatible
    and safe mode a message without encryption is refused: plain mode's URL signature does not
    cover the body, so one request URL seen in a log would let anyone post messages as anyone."""
    api_base: str = ""
    """Base URL of the WeChat API; empty means the real one (https://api.weixin.qq.com/).
    The sandbox sets it to <base_url>/sandbox/."""
    sandbox: bool = True
    """Serve the local WeChat stand-in and phone simulator under /sandbox (loopback only)."""
    allow_sandbox_with_real_appid: bool = False
    """The sandbox refuses to run with a real-looking AppID unless this is set."""
    templates: dict[str, str] = field(default_factory=dict)
    """Template message ids per notification event, e.g. {"agreement.applied" = "TEMPLATE_ID"}."""
    menu: list[dict[str, Any]] = field(default_factory=_default_menu)
    """Custom menu buttons pushed by `tripact wechat menu` (WeChat's JSON menu format)."""


@dataclass(frozen=True)
class WorkflowSettings:
    application_days: int = 5
    """Days an employer has to confirm or reject an application."""
    student_sign_days: int = 5
    """Days the student has to sign after the employer confirmed."""
    employer_sign_days: int = 5
    """Days the employer has to sign after the school signed."""
    termination_days: int = 5
    """Days the student has to answer a termination request."""


@dataclass(frozen=True)
class SigningSettings:
    master_secret: str = ""
    """Encrypts the platform CA keys at rest. Secret."""
    pki_dir: str = ""
    """Folder of the platform CA files; empty means instance/pki."""
    org_name: str = "tripact"
    """Organisation name in the platform certificates."""
    tsa_url: str = ""
    """External RFC 3161 timestamp authority; empty uses the built-in one."""
    tsa_timeout_seconds: float = 5.0
    """Bound on each call to the external authority before falling back to the built-in one."""
    tsa_trust_roots: str = ""
    """PEM file with the external authority's root certificate(s): trusted for timestamps only."""
    pkcs12_path: str = ""
    """Optional PKCS#12 file holding an issuing CA to use instead of the generated one."""
    pkcs12_password: str = ""
    """Password of that PKCS#12 file. Secret."""


@dataclass(frozen=True)
class RedisSettings:
    url: str = ""
    """redis://host:port/db; empty keeps tokens, de-duplication and rate limits in the database."""


@dataclass(frozen=True)
class SchedulerSettings:
    in_process: bool = True
    """Run the periodic jobs (outbox, expiry) inside the web process (demo); production runs
    `tripact scheduler` instead."""
    outbox_interval_seconds: float = 2.0
    expiry_interval_seconds: float = 300.0


@dataclass(frozen=True)
class Settings:
    """All settings; read-only."""

    server: ServerSettings = field(default_factory=ServerSettings)
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    storage: StorageSettings = field(default_factory=StorageSettings)
    wechat: WechatSettings = field(default_factory=WechatSettings)
    workflow: WorkflowSettings = field(default_factory=WorkflowSettings)
    signing: SigningSettings = field(default_factory=SigningSettings)
    redis: RedisSettings = field(default_factory=RedisSettings)
    scheduler: SchedulerSettings = field(default_factory=SchedulerSettings)

    @property
    def production(self) -> bool:
        return self.server.mode == "production"

    @property
    def instance_dir(self) -> Path:
        p = Path(self.server.instance_path)
        return p if p.is_absolute() else PROJECT_ROOT / p

    @property
    def database_url(self) -> str:
        return self.database.url or f"sqlite:///{self.instance_dir / 'tripact.db'}"

    @property
    def storage_path(self) -> Path:
        return Path(self.storage.path) if self.storage.path else self.instance_dir / "files"

    @property
    def pki_path(self) -> Path:
        return Path(self.signing.pki_dir) if self.signing.pki_dir else self.instance_dir / "pki"

    def replace(self, **sections: dict[str, Any]) -> Settings:
        """A copy with some keys changed, e.g. ``s.replace(database={"url": ...})`` (tests)."""
        changed = {}
        for name, values in sections.items():
            changed[name] = dataclasses.replace(getattr(self, name), **values)
        return dataclasses.replace(self, **changed)


# Keys that must be set (from file or env) in production mode.
REQUIRED_SECRETS = [
    ("server", "secret_key"),
    ("signing", "master_secret"),
    ("wechat", "appsecret"),
    ("wechat", "token"),
]
# Secrets of ours that guard everything (session cookies, the platform keys): long and random.
STRONG_SECRETS = [("server", "secret_key"), ("signing", "master_secret")]
MIN_SECRET_LENGTH = 32
# Secrets generated for development when missing.
DEV_SECRETS = REQUIRED_SECRETS + [("wechat", "encoding_aes_key")]

_SECTIONS: dict[str, type] = {f.name: f.default_factory for f in fields(Settings)}  # type: ignore[misc]


def _check_type(where: str, value: Any, annotation: Any) -> Any:
    """Return the value converted to the annotated type or raise SettingsError."""
    hint = annotation
    origin = typing.get_origin(hint)
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on", "0", "false", "no", "off"):
            return value.lower() in ("1", "true", "yes", "on")
        raise SettingsError(f"{where}: expected true or false, got {value!r}")
    if hint is int:
        if isinstance(value, bool):
            raise SettingsError(f"{where}: expected an integer, got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
        raise SettingsError(f"{where}: expected an integer, got {value!r}")
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise SettingsError(f"{where}: expected a number, got {value!r}")
    if hint is str:
        if isinstance(value, str):
            return value
        raise SettingsError(f"{where}: expected a string, got {value!r}")
    if origin is dict:
        if isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
            return dict(value)
        raise SettingsError(f"{where}: expected a table of strings")
    if origin is list:
        if isinstance(value, list):
            return list(value)
        raise SettingsError(f"{where}: expected a list")
    raise SettingsError(f"{where}: unsupported setting type")  # pragma: no cover


def _section_from(name: str, data: Any, env: dict[str, str]) -> Any:
    cls = _SECTIONS[name]
    if not isinstance(data, dict):
        raise SettingsError(f"[{name}]: expected a table, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in fields(cls)}
    for key in data:
        if key not in known:
            raise SettingsError(f"[{name}] {key}: unknown setting (see config.example.toml)")
    values = {}
    for key in known:
        env_name = f"TRIPACT_{name.upper()}_{key.upper()}"
        if env_name in env:
            raw: Any = env[env_name]
            if typing.get_origin(hints[key]) in (dict, list):
                raise SettingsError(f"{env_name}: tables and lists cannot be set from the environment")
            values[key] = _check_type(env_name, raw, hints[key])
        elif key in data:
            values[key] = _check_type(f"[{name}] {key}", data[key], hints[key])
    return cls(**values)


def _validate(s: Settings) -> None:
    if s.server.mode not in ("development", "production"):
        raise SettingsError(f"[server] mode: must be \"development\" or \"production\", got {s.server.mode!r}")
    if not 0 < s.server.port < 65536:
        raise SettingsError(f"[server] port: must be between 1 and 65535, got {s.server.port}")
    if not s.server.base_url.startswith(("http://", "https://")):
        raise SettingsError("[server] base_url: must start with http:// or https://")
    if s.server.max_upload_mb < 1:
        raise SettingsError("[server] max_upload_mb: must be at least 1")
    if s.storage.backend not in ("local", "s3"):
        raise SettingsError(f"[storage] backend: must be \"local\" or \"s3\", got {s.storage.backend!r}")
    if s.storage.backend == "s3" and not s.storage.s3_bucket:
        raise SettingsError("[storage] s3_bucket: required when backend = \"s3\"")
    if s.signing.tsa_url and not s.signing.tsa_trust_roots:
        raise SettingsError("[signing] tsa_trust_roots: required when tsa_url is set (the external TSA's "
                            "root certificate, PEM): without it no timestamp of that TSA verifies")
    url = s.database_url
    if not url.startswith(("sqlite://", "postgresql://", "postgres://", "mysql://", "postgresext://",
                           "sqlite+pool://", "postgresql+pool://", "mysql+pool://")):
        raise SettingsError(f"[database] url: unsupported scheme in {url.split('://')[0]!r}"
                            " (use sqlite, postgresql or mysql)")
    for key in ("application_days", "student_sign_days", "employer_sign_days", "termination_days"):
        if not 1 <= getattr(s.workflow, key) <= 365:
            raise SettingsError(f"[workflow] {key}: must be between 1 and 365 days")
    aes = s.wechat.encoding_aes_key
    if aes and len(aes) != 43:
        raise SettingsError("[wechat] encoding_aes_key: must be exactly 43 characters")
    if s.wechat.message_mode not in ("plain", "compatible", "safe"):
        raise SettingsError(f"[wechat] message_mode: must be \"plain\", \"compatible\" or \"safe\", "
                            f"got {s.wechat.message_mode!r}")
    if s.wechat.message_mode != "plain" and not aes:
        raise SettingsError(f"[wechat] encoding_aes_key: required for message_mode = \"{s.wechat.message_mode}\"")
    for section, key in (("scheduler", "outbox_interval_seconds"), ("scheduler", "expiry_interval_seconds"),
                         ("signing", "tsa_timeout_seconds")):
        value = getattr(getattr(s, section), key)
        if not (math.isfinite(value) and 0 < value <= 86_400):
            raise SettingsError(f"[{section}] {key}: must be a number of seconds above 0, got {value!r}")
    if s.production:
        for section, key in REQUIRED_SECRETS:
            value = getattr(getattr(s, section), key)
            if not value.strip():
                raise SettingsError(
                    f"[{section}] {key}: required in production mode "
                    f"(set it in the config file or TRIPACT_{section.upper()}_{key.upper()})")
            if (section, key) in STRONG_SECRETS and len(value.strip()) < MIN_SECRET_LENGTH:
                raise SettingsError(
                    f"[{section}] {key}: too short for production – at least {MIN_SECRET_LENGTH} characters, "
                    "e.g. from `python -c \"import secrets; print(secrets.token_urlsafe(32))\"`")
        if s.wechat.sandbox:
            raise SettingsError("[wechat] sandbox: the WeChat sandbox must be off in production mode")


def _dev_secrets(s: Settings) -> Settings:
    """Fill missing development secrets from instance/dev-secrets.toml, creating it if needed."""
    missing = [(sec, key) for sec, key in DEV_SECRETS if not getattr(getattr(s, sec), key)]
    if not missing:
        return s
    path = s.instance_dir / "dev-secrets.toml"
    stored: dict[str, dict[str, str]] = {}
    if path.exists():
        try:
            stored = tomllib.loads(path.read_text("utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise SettingsError(f"{path}: not valid TOML ({exc}); delete it to regenerate") from exc
    changed = False
    for sec, key in missing:
        if not stored.get(sec, {}).get(key):
            value = secrets.token_hex(32)[:43] if key == "encoding_aes_key" else secrets.token_urlsafe(32)
            stored.setdefault(sec, {})[key] = value
            changed = True
    if changed:
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = ["# Generated development secrets. Never use in production.\n"]
        for sec, values in stored.items():
            lines.append(f"\n[{sec}]\n")
            lines.extend(f'{k} = "{v}"\n' for k, v in values.items())
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.writelines(lines)
    updates: dict[str, dict[str, Any]] = {}
    for sec, key in missing:
        updates.setdefault(sec, {})[key] = stored[sec][key]
    return s.replace(**updates)


def load_settings(path: str | os.PathLike[str] | None = None,
                  env: dict[str, str] | None = None) -> Settings:
    """Read the settings file (see module docstring) and the environment; validate everything."""
    env = dict(os.environ if env is None else env)
    if path is None:
        path = env.get("TRIPACT_CONFIG") or None
        if path is None and (PROJECT_ROOT / "instance" / "config.toml").exists():
            path = PROJECT_ROOT / "instance" / "config.toml"
    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        try:
            data = tomllib.loads(p.read_text("utf-8"))
        except FileNotFoundError as exc:
            raise SettingsError(f"{p}: settings file not found") from exc
        except (OSError, UnicodeDecodeError) as exc:
            raise SettingsError(f"{p}: cannot read settings file ({exc})") from exc
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"{p}: not valid TOML ({exc})") from exc
    for name in data:
        if name not in _SECTIONS:
            raise SettingsError(f"[{name}]: unknown section (see config.example.toml)")
    sections = {name: _section_from(name, data.get(name, {}), env) for name in _SECTIONS}
    s = Settings(**sections)
    _validate(s)
    if not s.production:
        s = _dev_secrets(s)
    return s


def defaults_for_tests(tmp: Path, **sections: dict[str, Any]) -> Settings:
    """Settings for a test: everything under ``tmp``, secrets filled in, no file read."""
    base = Settings().replace(
        server={"instance_path": str(tmp), "secret_key": "test-secret-key"},
        signing={"master_secret": "test-master-secret"},
        wechat={"appsecret": "sandbox-secret", "token": "sandboxtoken",
                "encoding_aes_key": "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"},
        scheduler={"in_process": False},
    )
    s = base.replace(**sections) if sections else base
    _validate(s)
    return s


__all__ = ["Settings", "SettingsError", "load_settings", "defaults_for_tests"]
