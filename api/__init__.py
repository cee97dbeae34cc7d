"""The imgpress HTTP API: a Starlette app that stores uploads and enqueues jobs in Redis."""
