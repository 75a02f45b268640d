"""API Gateway HTTP API (payload version 2.0) events, as Lambda receives them, for the tests.

Only the standard library: the Lambda zip test's child interpreter imports this too.
"""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

API_HOST = "abc123.execute-api.eu-west-1.amazonaws.com"


def http_event(
    method: str,
    path: str,
    *,
    query: str = "",
    headers: dict[str, str] | None = None,
    body: bytes = b"",
    host: str = API_HOST,
    source_ip: str = "203.0.113.9",
) -> dict[str, Any]:
    """One HTTP request, the way API Gateway's `$default` route hands it to Lambda."""
    all_headers = {"host": host, "user-agent": "tabpilot-tests", **(headers or {})}
    if body:
        all_headers.setdefault("content-length", str(len(body)))
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query,
        "cookies": [],
        "headers": {k.lower(): v for k, v in all_headers.items()},
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc123",
            "domainName": host,
            "domainPrefix": host.split(".")[0],
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": "tabpilot-tests",
            },
            "requestId": uuid.uuid4().hex,
            "routeKey": "$default",
            "stage": "$default",
            "time": "04/Dec/2026:21:00:00 +0000",
            "timeEpoch": 1796418000000,
        },
        "body": base64.b64encode(body).decode("ascii"),
        "isBase64Encoded": True,
    }


def json_event(method: str, path: str, payload: Any, *, token: str = "") -> dict[str, Any]:
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    return http_event(method, path, headers=headers, body=json.dumps(payload).encode())


def upload_event(filename: str, data: bytes, *, token: str) -> dict[str, Any]:
    """`POST /api/datasets` with the CSV as a multipart form's `file` part."""
    boundary = "tabpilot" + uuid.uuid4().hex
    body = (
        (
            f"--{boundary}\r\n"
            f'Content-Disposition: form-data; name="file"; filename="{filename}"\r\n'
            "Content-Type: text/csv\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    headers = {
        "content-type": f"multipart/form-data; boundary={boundary}",
        "authorization": f"Bearer {token}",
    }
    return http_event("POST", "/api/datasets", headers=headers, body=body)


def scheduled_event() -> dict[str, Any]:
    """What an EventBridge schedule sends."""
    return {
        "version": "0",
        "id": uuid.uuid4().hex,
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": "2026-12-04T21:00:00Z",
        "region": "eu-west-1",
        "resources": ["arn:aws:events:eu-west-1:123456789012:rule/tabpilot-housekeeping"],
        "detail": {},
    }


def body_of(response: dict[str, Any]) -> bytes:
    """The response body Lambda returns to API Gateway, decoded."""
    body = response.get("body") or ""
    if response.get("isBase64Encoded"):
        return base64.b64decode(body)
    return body.encode("utf-8")


def json_of(response: dict[str, Any]) -> Any:
    return json.loads(body_of(response))
