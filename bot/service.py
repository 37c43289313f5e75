"""How our own Sanic services (the card service, the staff console) run in the foreground."""

from __future__ import annotations

import sys
from collections.abc import Callable

from sanic import Sanic

from bot import logs


def serve(component: str, label: str, create_app: Callable[[], Sanic], host: str,
          port: int) -> None:
    """Serves the app `create_app` builds; a bad setting (ValueError) ends it with one line
    naming `label`. One worker, as `make run` supervises one process each; no access log,
    as paths carry report references."""
    logs.install_for(component)
    try:
        app = create_app()
    except ValueError as error:
        sys.exit(f"{label}: {error}")
    app.run(host=host, port=port, workers=1, access_log=False, debug=False,
            auto_reload=False)
