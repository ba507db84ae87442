"""Marshmallow schemas: the request and response contract of the API."""
