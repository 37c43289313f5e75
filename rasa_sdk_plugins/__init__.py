"""The action server's declared extension point: rasa_sdk imports this package by name
(rasa_sdk/plugin.py) and calls `init_hooks` before it starts serving.

Ours adds GET /metrics and its counts (bot/metrics.py) to `python -m rasa_sdk`, the
Procfile's and the image's command unchanged.
"""

from __future__ import annotations

from typing import Any

import pluggy

hookimpl = pluggy.HookimplMarker("rasa_sdk")


class Metrics:
    @hookimpl
    def attach_sanic_app_extensions(self, app: Any) -> None:
        from bot import metrics
        from bot.settings import settings

        config = settings()
        if config.metrics_enabled:
            metrics.attach_action_server(app, config.metrics_token)


def init_hooks(manager: pluggy.PluginManager) -> None:
    manager.register(Metrics(), name="cardbot_metrics")
