"""Start-up wiring shared by every process kind (web, worker, CLI)."""

from __future__ import annotations

import gc
import logging

from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session

from hotline.settings import Settings
from ivr_flows import jobs as dialogue_jobs
from kb import db
from routing import quality
from routing.classify import get_matcher
from routing.index import catalogue_cache
from routing.locate import default_gazetteer
from tickets import telephony
from tickets.metrics import quality_inputs
from tickets.revisit import derive_secret
from tickets.service import ticket_service

log = logging.getLogger(__name__)


def build_telephony(settings: Settings) -> telephony.Telephony:
    """Twilio's REST API when its credentials are configured, else the offline recorder."""
    if settings.twilio_configured:
        assert settings.twilio_account_sid and settings.twilio_auth_token
        return telephony.TwilioTelephony.from_credentials(
            settings.twilio_account_sid,
            settings.twilio_auth_token,
            settings.main_number,
            status_callback_base=settings.public_base_url,
        )
    return telephony.OfflineTelephony(settings.main_number)


def configure_domain(settings: Settings) -> None:
    """Build the adapters the domain packages use, from the one settings object."""
    db.configure(settings.database_url)
    ticket_service.configure(
        timezone=settings.timezone,
        public_base_url=settings.public_base_url,
        survey_secret=derive_secret(settings.auth_token),
    )
    telephony.configure(build_telephony(settings))
    # The outbox's job runner (tickets.tasks) runs the dialogues' jobs too (the SMS after a call).
    dialogue_jobs.register()
    # Routing weighs institutions by their clients' revisit satisfaction, measured here.
    quality.use_provider(
        quality.CachedProvider(
            lambda session: quality.QualityTable.from_ratings(quality_inputs(session))
        )
    )


def warm_up() -> None:
    """Build the classifier's matcher, the gazetteer and the routing catalogue before the first
    text or caller: each takes from a fraction of a second to seconds (the matcher 0.7 s here).
    The web app does it at start-up, so that no webhook pays for it (Twilio gives up after
    15 s); the worker before its first job. A database that is not up yet only postpones the
    catalogue to the first use."""
    get_matcher()
    default_gazetteer()
    try:
        with Session(db.get_engine()) as session:
            catalogue_cache.get(session)
    except SQLAlchemyError:
        log.warning("routing catalogue not built at start-up: database unavailable")


def freeze_start_up_objects() -> None:
    """Take what start-up built (the matcher, gazetteer, catalogue, modules: about 450,000
    objects the collector tracks) out of the cyclic collector's sight, once per process.

    They live as long as the process, yet each full collection walked them all: 150–180 ms
    with every request of the process stopped (measured in session 11, web processes under
    the webhook benchmark; a full collection came every few seconds there), which set the
    webhooks' p99. Frozen, a full collection walks only what came after."""
    global _frozen
    if _frozen:
        return
    gc.collect()
    gc.freeze()
    _frozen = True


_frozen = False
