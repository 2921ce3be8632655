"""Checks of our own that schemathesis runs on every response (loaded by faults/schema
through SCHEMATHESIS_HOOKS).

The OpenAPI descriptions already say that every error is an ErrorEnvelope, so
`response_schema_conformance` validates the shape of documented error bodies. These checks
hold the rest of the SPEC's promise for any response, documented or not:

- error_in_envelope: every 4xx/5xx is JSON `{"errors":[{"message": str, "field"?: str}]}`
  with at least one entry and nothing else, `field` only as a string.
- valid_input_passes_validation: a request schemathesis generated as valid for the
  description is never refused with a field error. It replaces the built-in
  positive_data_acceptance, which cannot tell a validation 400 from a business-rule 400
  (`Email in use`, `Ticket is already reserved`, a card decline), both of which the SPEC
  puts on 400; field errors are validation only.
- no_internal_text: no error body carries what an internal error would leak (driver,
  framework or Rust panic text). Success bodies are left alone: they echo user data.
"""

import json

import schemathesis

# Fragments that only appear when internal error text reaches a client.
LEAKS = (
    "panicked at",
    "RUST_BACKTRACE",
    "Kind: ",  # mongodb driver errors
    "E11000",
    "serde_json",
    "Failed to deserialize",
    "Failed to parse the request body",
    "Expected request with `Content-Type",
    "anyhow",
    "src/",
)


@schemathesis.check
def error_in_envelope(ctx, response, case):
    """Every error response is the platform's envelope and nothing else."""
    if response.status_code < 400:
        return None
    content_type = ",".join(response.headers.get("content-type", []))
    if not content_type.startswith("application/json"):
        raise AssertionError(f"error {response.status_code} with content type {content_type!r}, not JSON")
    try:
        body = json.loads(response.content)
    except ValueError as err:
        raise AssertionError(f"error {response.status_code} body is not JSON: {response.content[:200]!r}") from err
    if not isinstance(body, dict) or set(body) != {"errors"}:
        raise AssertionError(f"error {response.status_code} body is not the envelope: {body!r}")
    errors = body["errors"]
    if not isinstance(errors, list) or not errors:
        raise AssertionError(f"error {response.status_code}: `errors` is not a non-empty list: {body!r}")
    for item in errors:
        if not isinstance(item, dict) or not isinstance(item.get("message"), str) or not item["message"]:
            raise AssertionError(f"error {response.status_code}: entry without a message: {item!r}")
        if not set(item) <= {"message", "field"} or ("field" in item and not isinstance(item["field"], str)):
            raise AssertionError(f"error {response.status_code}: unexpected entry shape: {item!r}")
    if response.status_code >= 500 and errors[0]["message"] not in ("Something went wrong", "Service unavailable"):
        raise AssertionError(f"error {response.status_code} says more than the SPEC's message: {body!r}")
    return None


@schemathesis.check
def valid_input_passes_validation(ctx, response, case):
    """Schema-valid input never gets a field error: validator and description agree."""
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive or response.status_code != 400:
        return None
    try:
        errors = json.loads(response.content)["errors"]
    except (ValueError, KeyError, TypeError):
        return None  # error_in_envelope reports it
    fields = [item for item in errors if isinstance(item, dict) and "field" in item]
    if fields:
        raise AssertionError(f"input valid for the description was refused by validation: {fields!r}")
    return None


@schemathesis.check
def no_internal_text(ctx, response, case):
    """No error body carries internal error text."""
    if response.status_code < 400:
        return None
    text = response.content.decode("utf-8", "replace")
    for leak in LEAKS:
        if leak in text:
            raise AssertionError(f"response {response.status_code} contains internal text {leak!r}: {text[:300]!r}")
    return None
