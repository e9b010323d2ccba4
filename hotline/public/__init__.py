"""The public face: no login, bilingual."""
