"""Runtime settings, read from the environment (and `.env`) in one place."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

ROOT = Path(__file__).resolve().parent.parent
EMBEDDED_REDIS_PORT = 6390


@dataclass(frozen=True)
class Settings:
    bind_host: str
    rasa_port: int
    actions_port: int
    card_service_port: int
    redis_url: str
    redis_embedded: bool
    redis_embedded_port: int
    rasa_token: str
    card_service_token: str
    staff_token: str
    data_dir: Path
    tracker_expiry_seconds: int
    # Card service: key material for data at rest, an optional Rasa URL override and a
    # clock offset (days) that tests and demos use to see temporary reports lapse.
    data_encryption_key: str = ""
    rasa_url_override: str = ""
    # Where the action server finds the card service when it runs on another host.
    card_service_url_override: str = ""
    clock_offset_days: int = 0
    outbox_max_delay_seconds: float = 60.0

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        bind_host = env.get("BIND_HOST", "127.0.0.1")
        embedded_port = _port(env, "REDIS_EMBEDDED_PORT", EMBEDDED_REDIS_PORT)
        external_url = env.get("REDIS_URL", "").strip()
        if external_url:
            redis_url = external_url
        else:
            password = env.get("REDIS_PASSWORD", "")
            auth = f":{quote(password, safe='')}@" if password else ""
            redis_url = f"redis://{auth}127.0.0.1:{embedded_port}/0"
        return cls(
            bind_host=bind_host,
            rasa_port=_port(env, "RASA_PORT", 5005),
            actions_port=_port(env, "ACTIONS_PORT", 5055),
            card_service_port=_port(env, "CARD_SERVICE_PORT", 8080),
            redis_url=redis_url,
            redis_embedded=not external_url,
            redis_embedded_port=embedded_port,
            rasa_token=env.get("RASA_TOKEN", ""),
            card_service_token=env.get("CARD_SERVICE_TOKEN", ""),
            staff_token=env.get("CARD_SERVICE_STAFF_TOKEN", ""),
            data_dir=Path(env.get("DATA_DIR", str(ROOT / "var"))),
            tracker_expiry_seconds=int(env.get("TRACKER_EXPIRY_SECONDS", str(90 * 24 * 3600))),
            data_encryption_key=env.get("DATA_ENCRYPTION_KEY", ""),
            rasa_url_override=env.get("RASA_URL", "").strip().rstrip("/"),
            card_service_url_override=env.get("CARD_SERVICE_URL", "").strip().rstrip("/"),
            clock_offset_days=int(env.get("CARD_SERVICE_CLOCK_OFFSET_DAYS", "0") or "0"),
            outbox_max_delay_seconds=float(env.get("CARD_SERVICE_OUTBOX_MAX_DELAY", "60") or "60"),
        )

    @property
    def local_host(self) -> str:
        """Where this machine reaches our own servers (a wildcard bind is not an address)."""
        return "127.0.0.1" if self.bind_host in ("0.0.0.0", "::", "") else self.bind_host  # noqa: S104

    @property
    def rasa_url(self) -> str:
        if self.rasa_url_override:
            return self.rasa_url_override
        return f"http://{self.local_host}:{self.rasa_port}"

    @property
    def actions_url(self) -> str:
        return f"http://{self.local_host}:{self.actions_port}"

    @property
    def card_service_url(self) -> str:
        if self.card_service_url_override:
            return self.card_service_url_override
        return f"http://{self.local_host}:{self.card_service_port}"

    @property
    def chat_page_url(self) -> str:
        return f"{self.rasa_url}/webhooks/webchat/chat/"

    def child_env(self) -> dict[str, str]:
        """Variables every process of the stack gets; endpoints.yml reads the REDIS_* ones."""
        parts = urlsplit(self.redis_url)
        return {
            "BIND_HOST": self.bind_host,
            "SANIC_HOST": self.bind_host,
            "RASA_PORT": str(self.rasa_port),
            "ACTIONS_PORT": str(self.actions_port),
            "ACTIONS_URL": f"{self.actions_url}/webhook",
            "CARD_SERVICE_PORT": str(self.card_service_port),
            "CARD_SERVICE_URL": self.card_service_url,
            "REDIS_URL": self.redis_url,
            "REDIS_HOST": parts.hostname or "127.0.0.1",
            "REDIS_PORT": str(parts.port or 6379),
            "REDIS_DB": (parts.path.lstrip("/") or "0"),
            "REDIS_PASSWORD": unquote(parts.password or ""),
            "REDIS_EMBEDDED_PORT": str(self.redis_embedded_port),
            "RASA_TOKEN": self.rasa_token,
            "CARD_SERVICE_TOKEN": self.card_service_token,
            "CARD_SERVICE_STAFF_TOKEN": self.staff_token,
            "DATA_DIR": str(self.data_dir),
            "TRACKER_EXPIRY_SECONDS": str(self.tracker_expiry_seconds),
        }


def _port(env: dict[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise ValueError(f"{name} must be a port number from 1 to 65535, got {raw!r}")
    return int(raw)
