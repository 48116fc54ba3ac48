"""The DS GraphQL API v2 client side: operations, transport, budget, retries."""
