"""Produces paddle_sdk_vector.json with Paddle's own Python SDK
(PyPI paddle-python-sdk 1.16.1): the h1 comes from the SDK's
PaddleSignature.calculate_hmac over "{ts}:{body}", and the SDK's
Verifier accepts the delivery before the vector is written. The secret
is a made-up test value in Paddle's pdl_ntfset_ format.

    python3 -m venv /tmp/paddle-venv
    /tmp/paddle-venv/bin/pip install paddle-python-sdk==1.16.1
    /tmp/paddle-venv/bin/python paddle_sdk_vector.py > paddle_sdk_vector.json
"""

import json

from paddle_billing.Notifications import Secret, Verifier
from paddle_billing.Notifications.PaddleSignature import PaddleSignature

SECRET = "pdl_ntfset_01hv8xqsgk3xfjd8z4h9g7n6kw_test0secret0for0webhooks"
TS = 1700000000
BODY = (
    '{"event_id":"evt_01hv8x2a5fgtbqjb9srbqjqbt1","event_type":"transaction.completed",'
    '"occurred_at":"2023-11-14T22:13:20.000000Z","notification_id":"ntf_01hv8x2ac2wb6zsbe1s2a4s3yq",'
    '"data":{"id":"txn_01hv8wptq8987qeep44cyrewp9","status":"completed"}}'
)

h1 = PaddleSignature.calculate_hmac(SECRET, f"{TS}:{BODY}".encode("utf-8")).hexdigest()
header = f"ts={TS};h1={h1}"


class Request:
    def __init__(self, headers, body):
        self.headers = headers
        self.body = body


assert Verifier().verify(
    Request({"Paddle-Signature": header}, BODY.encode("utf-8")), Secret(SECRET), verify_time_drift=False
)
assert not PaddleSignature().verify(header, BODY.replace("completed", "canceled", 1), Secret(SECRET))
print(json.dumps({"secret": SECRET, "paddle_signature": header, "body": BODY}, indent=2))
