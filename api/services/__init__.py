"""Services of the facade: the work behind each route, raising `api.errors` errors."""
