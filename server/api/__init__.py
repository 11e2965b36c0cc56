"""The REST API: `create_app(settings)` builds the FastAPI app; one router module per resource in routes/."""

from server.api.main import create_app

__all__ = ["create_app"]
