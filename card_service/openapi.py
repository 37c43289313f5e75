"""The OpenAPI 3.0 document of the card service, served at /v1/openapi.json.

A test compares its paths with the routes the app registers, both ways.
"""

from __future__ import annotations

from typing import Any

from bot.rules import statuses

REF = "#/components/schemas/"


def _error(description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": REF + "Error"}}}}


def _json(schema: str, description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": REF + schema}}}}


def _body(schema: str) -> dict[str, Any]:
    return {"required": True,
            "content": {"application/json": {"schema": {"$ref": REF + schema}}}}


AUTH_ERRORS = {"401": _error("Missing or wrong token"), "403": _error("Token of the wrong role")}
BODY_ERRORS = {"400": _error("Malformed JSON or not an object"),
               "413": _error("Body over 16 KiB"),
               "422": _error("Invalid fields, each named in error.fields")}
# The staff console's account name, for the card service's log (optional).
STAFF_USER = {"name": "X-Staff-User", "in": "header", "required": False,
              "schema": {"type": "string", "maxLength": 32},
              "description": "The person the staff console calls for: read with the console's "
                             "token only; a call with the shared staff token is logged as that "
                             "token's"}
REFERENCE = {"name": "reference", "in": "path", "required": True,
             "schema": {"type": "string", "example": "SC-7K3F-9Q2M"},
             "description": "Crockford base32; lower case and no dash accepted"}
CALLER = {"name": "X-Caller-Id", "in": "header", "required": False,
          "schema": {"type": "string", "maxLength": 200},
          "description": "Who is asking: the conversation (by client IP when absent). "
                         "After a failure a caller waits 2 s, 4 s, 8 s ... (15 min at most) "
                         "before its next try on that reference; failures are also limited "
                         "per caller and per reference, and the conversation that filed the "
                         "report (its conversation_id) is exempt from the per-reference "
                         "limit"}
TEXT = {"type": "string", "minLength": 1}
# Present until the report's personal data is erased, null after.
PERSONAL = {"type": "string", "nullable": True}

SCHEMAS: dict[str, Any] = {
    "Error": {"type": "object", "required": ["error"], "properties": {"error": {
        "type": "object", "required": ["code", "message", "fields"], "properties": {
            "code": {"type": "string"}, "message": {"type": "string"},
            "fields": {"type": "object", "additionalProperties": {"type": "string"},
                       "description": "field path -> reason code (missing, type, length, "
                                      "checksum, birth_date, not_minor, not_adult, "
                                      "not_mobile, ...)"}}}}},
    "LossReportRequest": {"type": "object", "required": ["child", "guardian", "city",
                                                         "conversation_id"], "properties": {
        "child": {"type": "object", "required": ["name", "id_number"], "properties": {
            "name": TEXT, "id_number": {"type": "string", "example": "110105201501010012"}}},
        "guardian": {"type": "object", "required": ["name", "id_number", "relationship",
                                                    "phone"], "properties": {
            "name": TEXT, "id_number": {"type": "string", "example": "11010519491231002X"},
            "relationship": TEXT, "phone": {"type": "string", "example": "+86 138 0013 8000"}}},
        "city": {"type": "string", "description": "Chinese or English; unknown cities are "
                                                  "filed under the national default rules"},
        "conversation_id": TEXT}},
    "GuardianCheck": {"type": "object", "required": ["guardian_id_number"],
                      "properties": {"guardian_id_number": {"type": "string"}}},
    "CancelCheck": {"type": "object", "required": ["guardian_id_number", "child_id_number"],
                    "properties": {"guardian_id_number": {"type": "string"},
                                   "child_id_number": {"type": "string"}}},
    "ConversationCheck": {"type": "object", "required": ["conversation_id"], "properties": {
        "conversation_id": {**TEXT, "maxLength": 200,
                            "description": "the sender id of the conversation asking; only "
                                           "the one that filed the report is answered"}}},
    "Erasure": {"type": "object", "required": ["reference", "status", "personal_data"],
                "properties": {
        "reference": {"type": "string"},
        "status": {"type": "string", "enum": list(statuses.STATUSES)},
        "personal_data": {"type": "string", "enum": ["erased", "kept"]},
        "erase_after_days": {"type": "integer", "minimum": 0,
                             "description": "with kept: days after the report becomes final "
                                            "(0: the request is remembered)"},
        "reason": {"type": "string", "enum": ["active"],
                   "description": "with kept: the card is still being replaced"}}},
    "SmsConsent": {"type": "object", "required": ["conversation_id", "consent"], "properties": {
        "conversation_id": {**TEXT, "maxLength": 200,
                            "description": "the conversation that filed the report"},
        "consent": {"type": "boolean",
                    "description": "true: the notices may also go by SMS to the report's "
                                   "phone number"}}},
    "NoticeAttempt": {"type": "object", "properties": {
        "at": {"type": "string", "format": "date-time"},
        "path": {"type": "string", "description": "render, page, customer_service, "
                                                  "subscription, template, session, "
                                                  "standard, utility, message, sms"},
        "outcome": {"type": "string",
                    "enum": ["seen", "queued", "retry", "fallback", "unreachable"]},
        "code": {"type": "string", "description": "the provider's error code, if any"},
        "detail": {"type": "string"}}},
    "Notice": {"type": "object", "properties": {
        "id": {"type": "string"}, "kind": {"type": "string",
                                           "enum": ["card_ready", "lapse_reminder"]},
        "channel": {"type": "string"},
        "paths": {"type": "array", "items": {"type": "string"},
                  "description": "tried in this order"},
        "path": {"type": "string", "nullable": True, "description": "the one being tried"},
        "state": {"type": "string",
                  "enum": ["pending", "queued", "delivered", "undeliverable"]},
        "created_at": {"type": "string", "format": "date-time"},
        "delivered_at": {"type": "string", "format": "date-time", "nullable": True},
        "delivered_path": {"type": "string", "nullable": True},
        "attempts": {"type": "array", "items": {"$ref": REF + "NoticeAttempt"}}}},
    "NoticeLedger": {"type": "object", "properties": {
        "reference": {"type": "string"},
        "notices": {"type": "array", "items": {"$ref": REF + "Notice"}}}},
    "RevealedPhone": {"type": "object", "required": ["reference", "phone"], "properties": {
        "reference": {"type": "string"}, "phone": {"type": "string"}}},
    "Event": {"type": "object", "required": ["status"], "properties": {
        "status": {"type": "string", "enum": sorted(statuses.STAFF_SETTABLE)}}},
    "HistoryEntry": {"type": "object", "properties": {
        "status": {"type": "string", "enum": list(statuses.STATUSES)},
        "at": {"type": "string", "format": "date-time"}}},
    "Region": {"type": "object", "properties": {
        "key": {"type": "string"}, "known": {"type": "boolean"},
        "name_en": {"type": "string"}, "name_zh": {"type": "string"},
        "temporary_report_days": {"type": "integer"}, "fee_yuan": {"type": "integer"},
        "processing_days_min": {"type": "integer"}, "processing_days_max": {"type": "integer"},
        "hotline": {"type": "string"},
        "written_report_en": {"type": "string"}, "written_report_zh": {"type": "string"},
        "bank_en": {"type": "string"}, "bank_zh": {"type": "string"}}},
    "LossReport": {"type": "object", "properties": {
        "reference": {"type": "string"},
        "status": {"type": "string", "enum": list(statuses.STATUSES)},
        "status_label": {"type": "object", "properties": {"en": {"type": "string"},
                                                          "zh": {"type": "string"}}},
        "terminal": {"type": "boolean"}, "can_cancel": {"type": "boolean"},
        "history": {"type": "array", "items": {"$ref": REF + "HistoryEntry"}},
        "created_at": {"type": "string", "format": "date-time"},
        "filed_on": {"type": "string", "format": "date"},
        "valid_until": {"type": "string", "format": "date"},
        "city": PERSONAL, "region": {"$ref": REF + "Region"},
        "next_step": {"type": "object", "properties": {
            "key": {"type": "string"}, "where": {"type": "object", "nullable": True},
            "deadline": {"type": "string", "format": "date", "nullable": True}}},
        "child": {"type": "object", "properties": {"id_number_masked": PERSONAL}},
        "guardian": {"type": "object", "properties": {
            "id_number_masked": PERSONAL, "phone_masked": PERSONAL, "relationship": PERSONAL}},
        "notified_at": {"type": "string", "nullable": True,
                        "description": "when the card-ready notice was seen"},
        "notified_by": {"type": "string", "nullable": True,
                        "description": "the path that delivered it (page, sms...)"},
        "reminded_at": {"type": "string", "nullable": True,
                        "description": "when the lapse reminder was seen"},
        "sms_consent": {"type": "boolean"},
        "personal_data": {"type": "string", "enum": ["kept", "erased"]},
        "personal_data_erased_at": {"type": "string", "format": "date-time", "nullable": True},
        "erase_requested_at": {"type": "string", "format": "date-time", "nullable": True}}},
    "ReportList": {"type": "object", "properties": {
        "reports": {"type": "array", "items": {"$ref": REF + "LossReport"}}}},
}

PATHS: dict[str, Any] = {
    "/health": {"get": {"summary": "Liveness and Redis reachability (no token)",
                        "security": [],
                        "responses": {"200": {"description": "Up"},
                                      "503": {"description": "Redis unreachable"}}}},
    "/metrics": {"get": {
        "summary": "Prometheus metrics (bot/metrics.py): from loopback, or with METRICS_TOKEN",
        "security": [],
        "responses": {"200": {"description": "Prometheus text format",
                              "content": {"text/plain": {"schema": {"type": "string"}}}},
                      "401": {"description": "METRICS_TOKEN is set and was not presented",
                              "content": {"text/plain": {"schema": {"type": "string"}}}},
                      "403": {"description": "Not from loopback and no METRICS_TOKEN set",
                              "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
    "/v1/openapi.json": {"get": {"summary": "This document (service or staff token)",
                                 "responses": {"200": {"description": "OpenAPI 3.0"},
                                               **AUTH_ERRORS}}},
    "/v1/regions/{city}": {"get": {
        "summary": "A city's rules, or the national default with known=false",
        "parameters": [{"name": "city", "in": "path", "required": True,
                        "schema": {"type": "string"}}],
        "responses": {"200": _json("Region", "The rules"), **AUTH_ERRORS}}},
    "/v1/loss-reports": {
        "post": {
            "summary": "File a temporary loss report (service token)",
            "parameters": [{"name": "Idempotency-Key", "in": "header", "required": True,
                            "schema": {"type": "string", "minLength": 1, "maxLength": 200}}],
            "requestBody": _body("LossReportRequest"),
            "responses": {"201": _json("LossReport", "Filed"),
                          "200": _json("LossReport", "Same key and body again: the same report"),
                          **AUTH_ERRORS, **BODY_ERRORS,
                          "503": _error("Storage unavailable")}},
        "get": {
            "summary": "Newest reports first, masked (staff token)",
            "parameters": [
                {"name": "status", "in": "query", "schema": {"type": "string",
                                                             "enum": list(statuses.STATUSES)}},
                {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1,
                                                            "maximum": 500}}],
            "responses": {"200": _json("ReportList", "Reports"), **AUTH_ERRORS,
                          "422": _error("Bad filter")}}},
    "/v1/loss-reports/{reference}": {"get": {
        "summary": "One report, masked (staff token)", "parameters": [REFERENCE],
        "responses": {"200": _json("LossReport", "The report"), **AUTH_ERRORS,
                      "404": _error("No such report")}}},
    "/v1/loss-reports/{reference}/lookup": {"post": {
        "summary": "Status and history for the guardian (service token)",
        "parameters": [REFERENCE, CALLER], "requestBody": _body("GuardianCheck"),
        "responses": {"200": _json("LossReport", "The report"), **AUTH_ERRORS, **BODY_ERRORS,
                      "404": _error("Unknown reference or wrong guardian (same answer)"),
                      "429": _error("Too many failed verifications; see Retry-After")}}},
    "/v1/loss-reports/{reference}/cancel": {"post": {
        "summary": "Lift a temporary report: the card was found (service token)",
        "parameters": [REFERENCE, CALLER], "requestBody": _body("CancelCheck"),
        "responses": {"200": _json("LossReport", "Cancelled"), **AUTH_ERRORS, **BODY_ERRORS,
                      "404": _error("Unknown reference, wrong guardian or wrong child "
                                    "(same answer)"),
                      "409": _error("The status no longer allows it"),
                      "429": _error("Too many failed verifications; see Retry-After")}}},
    "/v1/loss-reports/{reference}/erase": {"post": {
        "summary": "The filing conversation asks for the report's personal data to be erased "
                   "(service token): now if the status is final, else as soon as it is",
        "parameters": [REFERENCE], "requestBody": _body("ConversationCheck"),
        "responses": {"200": _json("Erasure", "Erased, or kept while the report is active"),
                      **AUTH_ERRORS, **BODY_ERRORS,
                      "404": _error("Unknown reference, another conversation, or already "
                                    "erased (same answer)")}}},
    "/v1/loss-reports/{reference}/sms-consent": {"post": {
        "summary": "The filing conversation says whether the notices may also go by SMS "
                   "(service token)",
        "parameters": [REFERENCE], "requestBody": _body("SmsConsent"),
        "responses": {"200": _json("LossReport", "Recorded"), **AUTH_ERRORS, **BODY_ERRORS,
                      "404": _error("Unknown reference or another conversation (same "
                                    "answer)")}}},
    "/v1/loss-reports/{reference}/notices": {"get": {
        "summary": "The report's notices and every attempt to deliver them (staff token)",
        "parameters": [REFERENCE],
        "responses": {"200": _json("NoticeLedger", "The ledger"), **AUTH_ERRORS,
                      "404": _error("No such report")}}},
    "/v1/loss-reports/{reference}/events": {"post": {
        "summary": "Move a report to its next status (staff token)",
        "parameters": [REFERENCE], "requestBody": _body("Event"),
        "responses": {"200": _json("LossReport", "Moved"), **AUTH_ERRORS, **BODY_ERRORS,
                      "404": _error("No such report"),
                      "409": _error("The state machine forbids this transition")}}},
    "/v1/loss-reports/{reference}/reveal": {"post": {
        "summary": "The guardian's whole phone number, logged with the X-Staff-User that "
                   "asked (staff token)",
        "parameters": [REFERENCE, STAFF_USER],
        "responses": {"200": _json("RevealedPhone", "The number"), **AUTH_ERRORS,
                      "404": _error("No such report"),
                      "409": _error("The report's personal data is erased")}}},
}


def document() -> dict[str, Any]:
    return {
        "openapi": "3.0.3",
        "info": {"title": "Card service", "version": "1.0.0",
                 "description": "Loss reports and replacement progress for a child's social "
                                "security card. Errors are {error: {code, message, fields}}."},
        "paths": PATHS,
        "components": {"schemas": SCHEMAS,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{"bearer": []}],
    }
