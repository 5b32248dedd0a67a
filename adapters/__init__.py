"""External formats and transports; they never import the service (interop), the store,
FastAPI or settings, and get typed configuration from their caller."""
