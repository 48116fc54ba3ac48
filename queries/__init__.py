"""GraphQL operations of ds-connector, one per .graphql file; installed as the package connector.queries."""
