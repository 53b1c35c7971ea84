"""The HTTP layer: routes, error bodies, middleware and the OpenAPI document."""
