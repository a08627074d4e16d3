"""Schemathesis hooks for scripts/fuzz-api.sh.

- Carrier webhooks (`/webhooks/carrier/...`) are signed the way
  crates/core/src/carrier.rs verifies them (HMAC-SHA1 over the public URL
  and the sorted form parameters, keyed by the tenant's carrier auth token)
  when FUZZ_WEBHOOK_SIGNING=valid; with FUZZ_WEBHOOK_SIGNING=bad they keep
  whatever signature was generated and a check demands a 4xx.
- A schema-valid request naming a record that does not exist (`customer_id`,
  `template_id`, `agent_id` in a body) is a 422 "no such ...": no schema can
  say "must exist", so that one rejection is not counted as the document
  being looser than the server. Every other rejected valid request is.
"""

import base64
import hashlib
import hmac
import itertools
import json
import os
import re
import urllib.parse

import schemathesis

BASE_URL = os.environ.get("FUZZ_BASE_URL", "")
SIGNING = os.environ.get("FUZZ_WEBHOOK_SIGNING", "")
CARRIER_TOKEN = os.environ.get("FUZZ_CARRIER_TOKEN", "acme-carrier-token")
# A number the carrier token's tenant owns, so inbound traffic reaches the handlers.
TENANT_NUMBER = os.environ.get("FUZZ_TENANT_NUMBER", "+12025550100")


def _wire_text(value):
    """A form value as text, spelled the way schemathesis sends it."""
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, (bool, dict, list)) or value is None:
        return json.dumps(value)
    return str(value)


def _form_pairs(body):
    pairs = []
    for name, value in body.items():
        values = value if isinstance(value, list) else [value]
        for item in values:
            pairs.append((str(name), _wire_text(item)))
    return pairs


def _signature(url, pairs):
    mac = hmac.new(CARRIER_TOKEN.encode(), url.encode(), hashlib.sha1)
    for name, value in sorted(pairs):
        mac.update(name.encode())
        mac.update(value.encode())
    return base64.b64encode(mac.digest()).decode()


_KEY = re.compile(r"^[!-~]{1,200}$")
_counter = itertools.count()


@schemathesis.hook
def map_headers(context, headers):
    """Makes every valid generated Idempotency-Key unique.

    Generation repeats keys across requests with different bodies (a 422
    `idempotency_key_reused`, rightly) and the stateful phase replays a key
    whose first response named a customer deleted since (a 404 afterwards,
    rightly): both are idempotency working, not contract failures. Invalid
    keys are left as generated, so their refusal is still tested.
    """
    if not headers:
        return headers
    for name in list(headers):
        if name.lower() == "idempotency-key":
            value = headers[name]
            if isinstance(value, str) and _KEY.match(value):
                headers[name] = f"{value}-{os.getpid()}-{next(_counter)}"
    return headers


@schemathesis.hook
def before_call(context, case, kwargs):
    path = case.operation.path
    if not path.startswith("/webhooks/carrier/") or SIGNING != "valid":
        return
    body = case.body
    if isinstance(body, dict):
        if "To" in body and path.endswith("/incoming"):
            body = dict(body, To=TENANT_NUMBER)
        pairs = _form_pairs(body)
        # Send exactly the text that was signed.
        case.body = urllib.parse.urlencode(pairs)
    elif isinstance(body, (str, bytes)):
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
        pairs = urllib.parse.parse_qsl(text, keep_blank_values=True)
    else:
        return
    url = BASE_URL + path
    query = case.query or {}
    if query:
        url += "?" + urllib.parse.urlencode(query, doseq=True)
    headers = case.headers or {}
    headers["X-Twilio-Signature"] = _signature(url, pairs)
    case.headers = headers


@schemathesis.check
def unsigned_webhook_is_refused(ctx, response, case):
    """A carrier webhook without a valid signature never succeeds."""
    if SIGNING != "bad" or not case.operation.path.startswith("/webhooks/carrier/"):
        return None
    if response.status_code < 400 or response.status_code >= 500:
        raise AssertionError(
            f"a webhook with a bad signature was answered {response.status_code}, not 4xx"
        )
    return None


# Rules a JSON Schema cannot state, each a documented refusal of a
# schema-valid request (ST202) that is the server being right, matched by its
# error `code` and the start of its `message`. Everything else fails the run.
INEXPRESSIBLE = [
    # A referenced record must exist (customer_id, template_id, agent_id ...).
    ("validation_failed", "no such "),
    # A phone number must be one libphonenumber accepts as valid.
    ("validation_failed", "not a phone number"),
    ("validation_failed", "not a valid phone number"),
    # Control characters: refused by the one text check at the edge
    # (crates/api/src/text.rs); the document says so in its description.
    ("validation_failed", None),  # matched by CONTROL below
    ("invalid_query", None),
    ("invalid_path", None),
    # Exactly one of body / template_id; at least one recipient source.
    ("validation_failed", "give either body or template_id"),
    ("validation_failed", "give at least one of"),
    ("validation_failed", "variables only apply with template_id"),
    # A cursor is opaque: only one the API issued is valid.
    ("invalid_cursor", ""),
    # A report's range is bounded relative to `to` (default: now).
    ("invalid_query", "the range may span at most"),
    ("invalid_query", "from must be before to"),
    # A key generated twice for different bodies (the examples and coverage
    # phases do not pass through map_headers): the server is right to refuse.
    ("idempotency_key_reused", ""),
    # A CSV upload's structure (a header row naming a phone column, balanced
    # quotes, at least one row) is not something a schema for text/csv says.
    ("malformed_csv", ""),
    # A scheduled call's run_at is bounded relative to now.
    ("validation_failed", "run_at is more than"),
    # A calling-hours window must not be empty (start and end differ).
    ("validation_failed", "end must differ from start"),
    # A time zone must be one of the IANA database's names (PostgreSQL's).
    ("validation_failed", "not an IANA time zone name"),
    # `from` must be one of the tenant's own numbers.
    ("validation_failed", "not one of this tenant's numbers"),
]
CONTROL = "contains the control character"


@schemathesis.hook
def filter_failure(context, failure, case, response):
    """Keeps every failure but the documented, inexpressible refusals above."""
    if getattr(failure, "code", None) != "ST202" or response.status_code not in (400, 422):
        return True
    # The stateful phase can fill a path parameter from a null field of an
    # earlier response (`/v1/customers/None`): not a schema-valid request.
    if any(v is None or v == "None" for v in (case.path_parameters or {}).values()):
        return False
    try:
        error = json.loads(response.content)["error"]
    except (ValueError, KeyError, TypeError):
        return True
    code, message = error.get("code"), str(error.get("message", ""))
    for expected_code, prefix in INEXPRESSIBLE:
        if code != expected_code:
            continue
        if prefix is None and CONTROL in message:
            return False
        if prefix is not None and message.startswith(prefix):
            return False
    return True
