"""A built-in Démarches-Simplifiées API simulator.

It executes GraphQL documents with graphql-core against DS's vendored schema and reproduces the DS
behaviours described in docs/ds-api.md. It is held to DS, not to our client: nothing here
imports the connector's client, store or domain code (only the vendored schema, which is DS's).
"""
