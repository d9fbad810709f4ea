"""Server settings: read once from the environment, passed into ``create_app``.

Nothing reads the environment at import time. :func:`Settings.from_env`
takes a mapping (``os.environ`` in production, a dict in tests) and applies
these environment variables:

=================================  ============================================================
``DATABASE_URL``                   SQLAlchemy async URL; default SQLite in the data dir
``JWT_SECRET``                     HMAC key for access tokens and download URLs
``S3_BUCKET``                      store bundles in S3 / R2 instead of local disk
``S3_ENDPOINT``                    S3-compatible endpoint override (R2, MinIO, ...)
``AWS_ACCESS_KEY_ID``              S3 credentials
``AWS_SECRET_ACCESS_KEY``
``HOTPATCH_S3_TIMEOUT``            seconds to connect to, and then to wait on, the object store
                                   per attempt (default 10); each call tries 3 times with backoff
``REDIS_URL``                      shared cache and rate limits across processes
``PORT``                           listen port (default 8080)
``HOST``                           listen address (default 127.0.0.1; 0.0.0.0 for every interface)
``HOTPATCH_DATA_DIR``              the embedded default's data directory
``HOTPATCH_PUBLIC_URL``            the base URL devices reach this server at
``HOTPATCH_RATE_LIMIT_SCALE``      multiply every rate-limit budget (default 1)
``HOTPATCH_REDIS_PREFIX``          namespace of this deployment's Redis keys (default hotpatch)
``HOTPATCH_CACHE_SECONDS``         lifetime of the active-release cache (default 2)
``HOTPATCH_DEVICE_FLUSH_SECONDS``  interval of device last-seen batch writes (default 2)
``HOTPATCH_MAX_ARCHIVE_BYTES``     the largest release archive accepted (default 256 MiB)
``HOTPATCH_MAX_EXPANDED_BYTES``    the largest release (sum of its signed file sizes) the server
                                   expands in memory to make or check patches and CodePush
                                   diffs, or to attach an Expo manifest (default 128 MiB)
``HOTPATCH_HEADER_TIMEOUT``        seconds a connection may take to send a request's headers
                                   (default 10)
``HOTPATCH_BODY_TIMEOUT``          seconds a request may take to send its body (default 600)
``HOTPATCH_MAX_CONNECTIONS``       connections served at once; above it requests get 503
                                   (default 1000)
``HOTPATCH_AUTO_PATCHES``          ``0`` stops making patches after each publish (default ``1``)
``HOTPATCH_METRICS_PUBLIC``        ``1`` serves ``/metrics`` without a credential (default ``0``)
``HOTPATCH_TIMESTAMP_KEY_FILE``    the Ed25519 private key (PEM) that signs channel heads; the
                                   embedded default makes one in the data directory; elsewhere,
                                   without it, no head is served
``HOTPATCH_HEAD_LIFETIME``         seconds a channel head stays valid on a device (default
                                   86400): how long a mirror can replay an old answer
=================================  ============================================================

The embedded default (no ``DATABASE_URL``) generates a JWT secret and a
timestamp key once and keeps them in the data directory, so
``hotpatch-server`` runs with zero configuration. The data directory is
private to the server's user (0700), and so are the secret, the key and the
SQLite database in it (0600). Outside it, a
missing or short ``JWT_SECRET`` is a startup error, never a silent default.
"""

from __future__ import annotations

import logging
import math
import secrets
from collections.abc import Mapping
from pathlib import Path

import attrs

from hotpatch_core.errors import HotPatchError
from hotpatch_core.keys import SigningKey

__all__ = ["MIN_SECRET_BYTES", "ConfigurationError", "Settings", "private_dir", "sqlite_path"]

log = logging.getLogger(__name__)
MIN_SECRET_BYTES = 32
DEFAULT_MAX_ARCHIVE = 256 * 1024 * 1024
DEFAULT_MAX_EXPANDED = 128 * 1024 * 1024


class ConfigurationError(Exception):
    """The environment does not describe a server that can start safely."""


@attrs.frozen
class Settings:
    """Everything the server needs to know, fixed at startup."""

    database_url: str
    jwt_secret: bytes = attrs.field(repr=False)
    data_dir: Path
    public_url: str = "http://127.0.0.1:8080"
    port: int = 8080
    host: str = "127.0.0.1"
    s3_bucket: str | None = None
    s3_endpoint: str | None = None
    s3_timeout: float = 10.0
    aws_access_key_id: str | None = attrs.field(default=None, repr=False)
    aws_secret_access_key: str | None = attrs.field(default=None, repr=False)
    redis_url: str | None = None
    max_archive_bytes: int = DEFAULT_MAX_ARCHIVE
    max_expanded_bytes: int = DEFAULT_MAX_EXPANDED
    header_timeout: float = 10.0
    body_timeout: float = 600.0
    max_connections: int = 1000
    auto_patches: bool = True
    metrics_public: bool = False
    access_token_seconds: int = 15 * 60
    refresh_token_seconds: int = 30 * 24 * 3600
    download_url_seconds: int = 24 * 3600
    active_cache_seconds: float = 2.0
    device_flush_seconds: float = 2.0
    rate_limit_scale: float = 1.0
    redis_prefix: str = "hotpatch"
    #: Signs channel heads (docs/spec/head.md); None: none are served.
    timestamp_key: SigningKey | None = attrs.field(default=None, repr=False)
    head_lifetime: float = 24 * 3600.0

    @property
    def embedded(self) -> bool:
        """Whether this is the zero-configuration SQLite + local disk setup."""
        return self.database_url.startswith("sqlite")

    @property
    def blob_dir(self) -> Path:
        """Where the local-disk backend keeps archives."""
        return self.data_dir / "blobs"

    @staticmethod
    def sqlite_file(env: Mapping[str, str]) -> Path | None:
        """Return the SQLite file ``env`` designates (the embedded default), or None.

        Reads nothing and creates nothing, so a command can tell whether a
        database exists before :meth:`from_env` prepares the data directory.
        """
        database_url = env.get("DATABASE_URL", "").strip()
        if not database_url:
            return _data_dir(env) / "hotpatch.db"
        path = sqlite_path(database_url)
        return path.resolve() if path is not None else None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Build settings from environment variables (see the module docstring)."""
        data_dir = _data_dir(env)
        database_url = env.get("DATABASE_URL", "").strip()
        if not database_url:
            database_url = f"sqlite+aiosqlite:///{data_dir / 'hotpatch.db'}"
        elif database_url.startswith(("postgres://", "postgresql://")):
            # Plain postgres:// URLs name no driver; the server is async (asyncpg).
            database_url = "postgresql+asyncpg://" + database_url.split("://", 1)[1]
        try:
            port = int(env.get("PORT", "8080"))
        except ValueError:
            raise ConfigurationError(f"PORT must be a number, got {env['PORT']!r}") from None
        secret = env.get("JWT_SECRET", "")
        if not secret:
            if not database_url.startswith("sqlite"):
                raise ConfigurationError(
                    "JWT_SECRET is required with DATABASE_URL; generate one with "
                    "`python3 -c 'import secrets; print(secrets.token_urlsafe(48))'`"
                )
            jwt_secret = _embedded_secret(data_dir)
        else:
            jwt_secret = secret.encode()
            if len(jwt_secret) < MIN_SECRET_BYTES:
                raise ConfigurationError(
                    f"JWT_SECRET must be at least {MIN_SECRET_BYTES} bytes; it is {len(jwt_secret)}"
                )
        s3_bucket = env.get("S3_BUCKET") or None
        timestamp_key = _timestamp_key(env, data_dir, embedded=database_url.startswith("sqlite"))
        return cls(
            database_url=database_url,
            jwt_secret=jwt_secret,
            data_dir=data_dir,
            public_url=env.get("HOTPATCH_PUBLIC_URL", f"http://127.0.0.1:{port}").rstrip("/"),
            port=port,
            host=env.get("HOST", "127.0.0.1"),
            s3_bucket=s3_bucket,
            s3_endpoint=env.get("S3_ENDPOINT") or None,
            s3_timeout=_positive_float(env, "HOTPATCH_S3_TIMEOUT", 10.0),
            aws_access_key_id=env.get("AWS_ACCESS_KEY_ID") or None,
            aws_secret_access_key=env.get("AWS_SECRET_ACCESS_KEY") or None,
            redis_url=env.get("REDIS_URL") or None,
            rate_limit_scale=_positive_float(env, "HOTPATCH_RATE_LIMIT_SCALE", 1.0),
            redis_prefix=env.get("HOTPATCH_REDIS_PREFIX", "hotpatch"),
            active_cache_seconds=_positive_float(env, "HOTPATCH_CACHE_SECONDS", 2.0),
            device_flush_seconds=_positive_float(env, "HOTPATCH_DEVICE_FLUSH_SECONDS", 2.0),
            auto_patches=_flag(env, "HOTPATCH_AUTO_PATCHES", default=True),
            metrics_public=_flag(env, "HOTPATCH_METRICS_PUBLIC", default=False),
            max_archive_bytes=int(
                _positive_float(env, "HOTPATCH_MAX_ARCHIVE_BYTES", float(DEFAULT_MAX_ARCHIVE))
            ),
            header_timeout=_positive_float(env, "HOTPATCH_HEADER_TIMEOUT", 10.0),
            body_timeout=_positive_float(env, "HOTPATCH_BODY_TIMEOUT", 600.0),
            max_connections=max(1, int(_positive_float(env, "HOTPATCH_MAX_CONNECTIONS", 1000.0))),
            max_expanded_bytes=int(
                _positive_float(env, "HOTPATCH_MAX_EXPANDED_BYTES", float(DEFAULT_MAX_EXPANDED))
            ),
            timestamp_key=timestamp_key,
            head_lifetime=_positive_float(env, "HOTPATCH_HEAD_LIFETIME", 24 * 3600.0),
        )


def sqlite_path(database_url: str) -> Path | None:
    """Return the file a SQLite URL names, or None (another database, or in memory)."""
    prefix = next(
        (p for p in ("sqlite+aiosqlite:///", "sqlite:///") if database_url.startswith(p)), None
    )
    if prefix is None or database_url == prefix + ":memory:":
        return None
    return Path(database_url.removeprefix(prefix))


def private_dir(path: Path) -> None:
    """Create ``path`` if needed and make it 0700: it holds the database, the secret, bundles."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        path.chmod(0o700)
    except OSError as exc:  # not ours to change (a mount point): say so, do not stop
        log.warning("could not make %s private (0700): %s", path, exc)


def _data_dir(env: Mapping[str, str]) -> Path:
    """Return the data directory ``env`` names (``HOTPATCH_DATA_DIR``, default ./hotpatch-data)."""
    return Path(env.get("HOTPATCH_DATA_DIR", "./hotpatch-data")).resolve()


def _flag(env: Mapping[str, str], name: str, *, default: bool) -> bool:
    text = env.get(name, "").strip().lower()
    if not text:
        return default
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off"}:
        return False
    raise ConfigurationError(f"{name} must be 1 or 0, got {text!r}")


def _positive_float(env: Mapping[str, str], name: str, default: float) -> float:
    text = env.get(name)
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        raise ConfigurationError(f"{name} must be a number, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise ConfigurationError(f"{name} must be a positive number, got {text!r}")
    return value


def _embedded_secret(data_dir: Path) -> bytes:
    """Create (once) and read the embedded default's secret, private to this user."""
    path = data_dir / "jwt-secret"
    if not path.exists():
        private_dir(data_dir)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(secrets.token_urlsafe(48))
        tmp.chmod(0o600)
        tmp.replace(path)
    return path.read_text().strip().encode()


def _timestamp_key(env: Mapping[str, str], data_dir: Path, *, embedded: bool) -> SigningKey | None:
    """Load the key that signs channel heads: the named file, or the embedded default's own."""
    named = env.get("HOTPATCH_TIMESTAMP_KEY_FILE", "").strip()
    if not named and not embedded:
        return None  # several servers must share one key: it is never made up for them
    path = Path(named) if named else data_dir / "timestamp-key.pem"
    if not named and not path.exists():
        private_dir(data_dir)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(SigningKey.generate().to_pem())
        tmp.chmod(0o600)
        tmp.replace(path)
    try:
        return SigningKey.from_pem(path.read_bytes())
    except OSError as exc:
        raise ConfigurationError(f"cannot read the timestamp key {path}: {exc}") from None
    except HotPatchError as exc:
        raise ConfigurationError(f"{path} is not an Ed25519 private key: {exc}") from None
