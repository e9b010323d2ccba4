"""Imports every table module so that the shared metadata knows all tables (Alembic, tests)."""

import kb.models  # noqa: F401
import tickets.models  # noqa: F401
