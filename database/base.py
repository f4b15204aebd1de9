"""Declarative bases: one per database, each with its own metadata and naming convention."""

from __future__ import annotations

from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class ClientBase(DeclarativeBase):
    """Models of the client database."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class AdminBase(DeclarativeBase):
    """Models of the admin database."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class SharedBase(DeclarativeBase):
    """Models of the shared database (the job ledger)."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
