"""The release's version, in a module of its own so that a face (the OpenAPI
document) can read it without importing the app factory above it."""

__version__ = "0.1.0"
