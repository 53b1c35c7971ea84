"""The OpenAPI 3 document, rendered from the pydantic schemas that validate requests."""

from __future__ import annotations

import functools
from typing import Any

from pydantic.json_schema import models_json_schema

from registry_server.schemas import schema_models

_REF = "#/components/schemas/{model}"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(name: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(name)}}}


def _errors(*statuses: int) -> dict[str, Any]:
    text = {400: "Malformed JSON or wrong content type", 401: "Missing or wrong bearer token",
            403: "The instance's lease token was not presented (X-Lease-Token)",
            408: "The request body did not arrive in time",
            404: "Not found", 409: "The id belongs to another service name", 413: "Body over 64 KiB",
            422: "Validation failed; details name each field",
            503: "The store is unavailable, or too many watchers (Retry-After)"}
    return {str(s): _json("Error", text[s]) for s in statuses}


_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
_NAME = {"name": "name", "in": "path", "required": True,
         "schema": {"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"}}
_STATUS_Q = {"name": "status", "in": "query", "required": False, "description": "comma list of statuses",
             "schema": {"type": "string"}}
_VERSION_Q = {"name": "version", "in": "query", "required": False, "schema": {"type": "string"}}
_INDEX_Q = {"name": "index", "in": "query", "required": False,
            "description": "blocking query: answer once the service's revision differs from this one "
                           "(X-Registry-Index of an earlier answer), or when `wait` runs out",
            "schema": {"type": "integer", "minimum": 0}}
_WAIT_Q = {"name": "wait", "in": "query", "required": False,
           "description": "longest wait of a blocking query: 30s, 1m, 500ms or seconds; default 60s, at most 300s "
                          "(plus up to 1/16 jitter)",
           "schema": {"type": "string", "pattern": r"^\d+(\.\d+)?(ms|s|m)?$"}}
_WATCH_HEADERS = {"X-Registry-Index": {"description": "the service's revision", "schema": {"type": "integer"}},
                  "ETag": {"description": "weak tag of revision and filters", "schema": {"type": "string"}}}
_BEARER: list[dict[str, list[str]]] = [{"bearer": []}, {}]


@functools.cache
def openapi_document() -> dict[str, Any]:
    _, defs = models_json_schema([(m, "validation") for m in schema_models()], ref_template=_REF)
    schemas = dict(defs.get("$defs", {}))
    return {
        "openapi": "3.1.0",
        "info": {"title": "Service registry", "version": "1.0.0",
                 "description": "Register instances, renew their leases, discover services."},
        "paths": {
            "/instances": {
                "post": {"summary": "Register an instance (idempotent by id)", "operationId": "register",
                         "security": _BEARER,
                         "requestBody": {"required": True, "content": {"application/json": {
                             "schema": _ref("RegisterRequest")}}},
                         "responses": {"201": _json("RegisteredInstance", "Registered"),
                                       "200": _json("RegisteredInstance", "Already registered: renewed"),
                                       **_errors(400, 401, 403, 408, 409, 413, 422, 503)}},
                "get": {"summary": "List instances", "operationId": "listInstances",
                        "parameters": [{"name": "name", "in": "query", "required": False,
                                        "schema": {"type": "string"}}, _STATUS_Q, _VERSION_Q],
                        "responses": {"200": _json("InstanceList", "Live instances sorted by id"),
                                      **_errors(401, 422, 503)}},
            },
            "/instances/{id}": {
                "get": {"summary": "One instance", "operationId": "getInstance", "parameters": [_ID],
                        "responses": {"200": _json("Instance", "The instance"), **_errors(401, 404, 503)}},
                "delete": {"summary": "Deregister", "operationId": "deregister", "parameters": [_ID],
                           "security": _BEARER,
                           "responses": {"204": {"description": "Deregistered"}, **_errors(401, 403, 404, 503)}},
            },
            "/instances/{id}/heartbeat": {
                "put": {"summary": "Renew the lease; optionally change the status", "operationId": "heartbeat",
                        "parameters": [_ID], "security": _BEARER,
                        "requestBody": {"required": False, "content": {"application/json": {
                            "schema": _ref("HeartbeatRequest")}}},
                        "responses": {"200": _json("Instance", "Renewed"),
                                      **_errors(400, 401, 403, 404, 408, 413, 422, 503)}},
            },
            "/services": {
                "get": {"summary": "Service names with counts", "operationId": "listServices",
                        "responses": {"200": _json("ServiceList", "Services sorted by name"),
                                      **_errors(401, 503)}},
            },
            "/services/{name}": {
                "get": {"summary": "Discover a service's instances (optionally a blocking query)",
                        "operationId": "discover",
                        "parameters": [_NAME, _STATUS_Q, _VERSION_Q, _INDEX_Q, _WAIT_Q,
                                       {"name": "If-None-Match", "in": "header", "required": False,
                                        "schema": {"type": "string"}}],
                        "responses": {"200": {**_json("ServiceInstances", "Instances (empty for unknown names)"),
                                              "headers": _WATCH_HEADERS},
                                      "304": {"description": "Unchanged since the ETag given",
                                              "headers": _WATCH_HEADERS},
                                      **_errors(401, 422, 503)}},
            },
            "/events": {
                "get": {"summary": "Change stream (Server-Sent Events)", "operationId": "events",
                        "description": "Events `registered`, `updated`, `status_changed`, `deregistered`, `expired` "
                                       "with data {type, service, revision, instance}; `ready` once caught up; "
                                       "`reset` when events were lost and the consumer must re-read.",
                        "parameters": [{"name": "service", "in": "query", "required": False,
                                        "schema": {"type": "string"}},
                                       {"name": "Last-Event-ID", "in": "header", "required": False,
                                        "schema": {"type": "string"}},
                                       {"name": "last_event_id", "in": "query", "required": False,
                                        "schema": {"type": "string"}}],
                        "responses": {"200": {"description": "text/event-stream",
                                              "content": {"text/event-stream": {"schema": {"type": "string"}}}},
                                      **_errors(401, 422, 503)}},
            },
            "/healthz": {
                "get": {"summary": "Liveness of the registry and its store", "operationId": "healthz",
                        "responses": {"200": _json("Health", "Healthy"), "503": _json("Health", "Store down")}},
            },
            "/metrics": {
                "get": {"summary": "Prometheus metrics", "operationId": "metrics",
                        "responses": {"200": {"description": "Prometheus text exposition",
                                              "content": {"text/plain": {"schema": {"type": "string"}}}}}},
            },
            "/openapi.json": {
                "get": {"summary": "This document", "operationId": "openapi",
                        "responses": {"200": {"description": "OpenAPI 3 document",
                                              "content": {"application/json": {"schema": {"type": "object"}}}}}},
            },
        },
        "components": {"schemas": schemas,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    }
