"""The vendored DS GraphQL schema (package data), shared by the client and the simulator.

This is DS's own description of its API, not connector code: the simulator may use it.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

from graphql import GraphQLSchema, build_schema

SCHEMA_FILE = "ds.graphql"


@lru_cache(maxsize=1)
def sdl() -> str:
    """The schema's SDL text, read from the installed package."""
    return resources.files(__package__).joinpath(SCHEMA_FILE).read_text(encoding="utf-8")


def build() -> GraphQLSchema:
    """A fresh GraphQLSchema built from the SDL (callers that patch resolvers get their own copy)."""
    return build_schema(sdl())


@lru_cache(maxsize=1)
def schema() -> GraphQLSchema:
    """A shared, read-only GraphQLSchema for validation."""
    return build()
