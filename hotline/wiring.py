"""Start-up wiring shared by every process kind (web, worker, CLI)."""

from __future__ import annotations

from hotline.settings import Settings
from kb import db
from tickets.service import ticket_service


def configure_domain(settings: Settings) -> None:
    """Build the adapters the domain packages use, from the one settings object."""
    db.configure(settings.database_url)
    ticket_service.configure(timezone=settings.timezone)
