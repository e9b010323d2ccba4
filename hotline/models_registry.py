"""Imports every table module so that the shared metadata knows all tables (Alembic, tests)."""

import hotline.accounts.models  # noqa: F401
import hotline.open311_models  # noqa: F401
import hotline.public.models  # noqa: F401
import hotline.web.models  # noqa: F401
import ivr_flows.models  # noqa: F401
import kb.models  # noqa: F401
import kb.subscriptions  # noqa: F401
import tickets.models  # noqa: F401
