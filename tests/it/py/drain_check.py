"""Checks what drains sent, independently of hookgate's own code.

Usage: drain_check.py <file.json>, the file holding
{"secret": "whsec_...", "otlp": ["<body>", ...], "http": [{"headers": {...}, "body": "<body>"}, ...]}.

Every OTLP body must parse as an `ExportLogsServiceRequest` with the official protobuf
definitions (`opentelemetry-proto` from PyPI, `google.protobuf.json_format`, unknown fields
refused); every `http` batch must verify with the Standard Webhooks reference library
(`standardwebhooks` from PyPI). Prints one JSON line: {"otlp_records", "http_records", "errors"}.
"""

import json
import sys

from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from standardwebhooks.webhooks import Webhook

with open(sys.argv[1], encoding="utf-8") as f:
    data = json.load(f)

errors = []
otlp_records = 0
for i, body in enumerate(data["otlp"]):
    try:
        request = json_format.Parse(body, ExportLogsServiceRequest(), ignore_unknown_fields=False)
        for rl in request.resource_logs:
            names = {a.key: a.value.string_value for a in rl.resource.attributes}
            if names.get("service.name") != "hookgate":
                errors.append(f"otlp[{i}]: service.name is {names.get('service.name')!r}")
            for sl in rl.scope_logs:
                for record in sl.log_records:
                    otlp_records += 1
                    if record.time_unix_nano == 0 or record.severity_number == 0:
                        errors.append(f"otlp[{i}]: a record without time or severity")
                    if not record.body.string_value:
                        errors.append(f"otlp[{i}]: a record without a body")
    except Exception as e:  # noqa: BLE001 - report every failure to the test
        errors.append(f"otlp[{i}]: {type(e).__name__}: {e}")

http_records = 0
hook = Webhook(data["secret"])
for i, item in enumerate(data["http"]):
    headers = {k.lower(): v for k, v in item["headers"].items()}
    try:
        payload = hook.verify(item["body"], headers)
        http_records += len(payload)
    except Exception as e:  # noqa: BLE001
        errors.append(f"http[{i}]: {type(e).__name__}: {e}")

print(json.dumps({"otlp_records": otlp_records, "http_records": http_records, "errors": errors}))
