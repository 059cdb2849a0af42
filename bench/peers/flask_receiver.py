"""The peer of scripts/bench-load: the gigstack receiver a Python team would
write first. It verifies the signature, parses the JSON and answers, and stores
nothing (so it does less work per request than `webhooks serve`, which durably
claims and enqueues each event).

Run as a user would, behind gunicorn's default sync workers, 4 of them:
    GIGSTACK_WEBHOOK_SECRET=... gunicorn -w 4 -b 127.0.0.1:8000 flask_receiver:app
"""

import hashlib
import hmac
import json
import os

from flask import Flask, jsonify, request

SECRET = os.environ["GIGSTACK_WEBHOOK_SECRET"].encode()
app = Flask(__name__)


@app.post("/webhooks/gigstack")
def gigstack():
    body = request.get_data()  # raw bytes: the signature covers them exactly
    expected = hmac.new(SECRET, body, hashlib.sha256).hexdigest().encode()
    given = request.headers.get("X-Gigstack-Signature", "").encode("latin-1")
    if not hmac.compare_digest(expected, given):
        return jsonify(error="invalid signature"), 401
    try:
        event = json.loads(body)
        event_id, event_type = event["id"], event["type"]
    except (ValueError, TypeError, KeyError):
        return jsonify(error="invalid JSON or missing id/type"), 400
    app.logger.debug("gigstack %s %s", event_type, event_id)
    return jsonify(status="accepted", ids=[event_id])
