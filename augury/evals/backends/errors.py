"""Errors a remote model endpoint can raise (kept dependency-free so the runner can import them cheaply)."""

from __future__ import annotations


class EndpointError(RuntimeError):
    """The endpoint answered in a way retrying cannot fix (bad key, unknown model, garbage): stop the run."""


class TransientEndpointError(RuntimeError):
    """A failure worth retrying (connection reset, timeout, HTTP 429 or 5xx)."""


class RejectedRequestError(RuntimeError):
    """The endpoint rejected this one request (HTTP 400, 413 or 422: e.g. its prompt exceeds the model's context):
    that sample fails, not the run; retrying would be rejected again."""


class NoAnswerError(RuntimeError):
    """The endpoint answered this one request without answer text (`message.content` null or missing, no choices,
    or empty at the token limit: a reasoning model that spent its tokens thinking, a structured refusal): that
    sample fails, not the run; it is not an empty answer."""
