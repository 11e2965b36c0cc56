"""Entry point for ASGI servers: `uvicorn --factory server.main:app_from_environment`."""

from __future__ import annotations

from fastapi import FastAPI

from server.api.main import create_app
from server.config import get_settings

__all__ = ["app_from_environment", "create_app"]


def app_from_environment() -> FastAPI:
    settings = get_settings()
    settings.require_secure()
    return create_app(settings)
