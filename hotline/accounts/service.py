"""Creating users, issuing API tokens and recognising them.

Tokens are random (256 bits), shown once, stored as SHA-256: a fast hash is right for them (unlike
passwords) because they are long random secrets, not guessable words. Passwords are hashed with
argon2id (argon2-cffi); the web login that checks them comes later.
"""

from __future__ import annotations

import hashlib
import secrets

from argon2 import PasswordHasher
from sqlmodel import Session, col, select

from hotline.accounts.models import ApiToken, User
from kb.db import utcnow
from kb.repository import catalogue_repository
from tickets.models import Role
from tickets.service import Actor

TOKEN_PREFIX = "hl_"
_hasher = PasswordHasher()


class AccountError(ValueError):
    """A user cannot be created or found as asked; the message says why."""


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_user(
    session: Session,
    username: str,
    role: Role | str,
    *,
    institution_id: int | None = None,
    password: str | None = None,
) -> User:
    try:
        role = Role(role)
    except ValueError:
        raise AccountError(f"unknown role {role!r}; one of {', '.join(Role)}") from None
    username = username.strip()
    if not username or len(username) > 64:
        raise AccountError("a username is 1 to 64 characters")
    if role == Role.system:
        raise AccountError("system is for the hotline's own processes, not for users")
    if role == Role.institution:
        if institution_id is None:
            raise AccountError("an institution user needs --institution ID")
        if catalogue_repository.institution(session, institution_id) is None:
            raise AccountError(f"no institution with id {institution_id}")
    elif institution_id is not None:
        raise AccountError("only institution users are bound to an institution")
    if session.exec(select(User).where(User.username == username)).first() is not None:
        raise AccountError(f"user {username} already exists")
    user = User(
        username=username,
        role=role,
        institution_id=institution_id,
        password_hash=hash_password(password) if password else None,
    )
    session.add(user)
    session.flush()
    return user


def user_by_name(session: Session, username: str) -> User:
    user = session.exec(select(User).where(User.username == username)).first()
    if user is None:
        raise AccountError(f"no user {username}")
    return user


def issue_token(session: Session, user: User, *, label: str = "") -> str:
    """A new API token for ``user``; the only time it is ever seen in clear."""
    assert user.id is not None
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(ApiToken(user_id=user.id, token_sha256=token_digest(token), label=label[:64]))
    session.flush()
    return token


def user_for_token(session: Session, token: str) -> User | None:
    if not token.startswith(TOKEN_PREFIX):
        return None
    found = session.exec(
        select(User)
        .join(ApiToken, col(ApiToken.user_id) == col(User.id))
        .where(
            ApiToken.token_sha256 == token_digest(token),
            col(ApiToken.revoked_at).is_(None),
            col(User.active).is_(True),
        )
    ).first()
    return found


def revoke_tokens(session: Session, user: User) -> int:
    tokens = session.exec(
        select(ApiToken).where(ApiToken.user_id == user.id, col(ApiToken.revoked_at).is_(None))
    ).all()
    for token in tokens:
        token.revoked_at = utcnow()
        session.add(token)
    session.flush()
    return len(tokens)


def actor_for(user: User) -> Actor:
    return Actor(f"user:{user.username}", user.role, user.institution_id)
