"""JSON Schema of a declarativeNetRequest ``Rule``, written from Chrome's reference
(developer.chrome.com/docs/extensions/reference/api/declarativeNetRequest): the types
Rule, RuleAction, RuleActionType, RuleCondition, ResourceType, RequestMethod, DomainType,
Redirect, URLTransform, QueryTransform, QueryKeyValue, ModifyHeaderInfo, HeaderInfo, and
the rules stated in prose there (one of urlFilter/regexFilter; resourceTypes and
excludedResourceTypes not both; urlFilter ASCII and not starting with ``||*``;
regexSubstitution only with a regexFilter; a redirect action needs ``redirect``).
"""

from __future__ import annotations

RESOURCE_TYPE = {
    "enum": [
        "main_frame",
        "sub_frame",
        "stylesheet",
        "script",
        "image",
        "font",
        "object",
        "xmlhttprequest",
        "ping",
        "csp_report",
        "media",
        "websocket",
        "webtransport",
        "webbundle",
        "other",
    ]
}
REQUEST_METHOD = {
    "enum": ["connect", "delete", "get", "head", "options", "patch", "post", "put", "other"]
}
DOMAINS = {"type": "array", "items": {"type": "string", "minLength": 1}}
INTS = {"type": "array", "items": {"type": "integer"}}
QUERY_KEY_VALUE = {
    "type": "object",
    "properties": {
        "key": {"type": "string"},
        "value": {"type": "string"},
        "replaceOnly": {"type": "boolean"},
    },
    "required": ["key", "value"],
    "additionalProperties": False,
}
URL_TRANSFORM = {
    "type": "object",
    "properties": {
        "scheme": {"type": "string"},
        "host": {"type": "string"},
        "port": {"type": "string"},
        "path": {"type": "string"},
        "query": {"type": "string"},
        "queryTransform": {
            "type": "object",
            "properties": {
                "addOrReplaceParams": {"type": "array", "items": QUERY_KEY_VALUE},
                "removeParams": {"type": "array", "items": {"type": "string"}},
            },
            "additionalProperties": False,
        },
        "fragment": {"type": "string"},
        "username": {"type": "string"},
        "password": {"type": "string"},
    },
    "additionalProperties": False,
}
REDIRECT = {
    "type": "object",
    "properties": {
        "extensionPath": {"type": "string", "pattern": "^/"},
        "regexSubstitution": {"type": "string"},
        "transform": URL_TRANSFORM,
        "url": {"type": "string", "minLength": 1},
    },
    "additionalProperties": False,
    "minProperties": 1,
    "maxProperties": 1,
}
MODIFY_HEADER_INFO = {
    "type": "object",
    "properties": {
        "header": {"type": "string", "minLength": 1},
        "operation": {"enum": ["append", "set", "remove"]},
        "value": {"type": "string"},
    },
    "required": ["header", "operation"],
    "additionalProperties": False,
}
HEADER_INFO = {
    "type": "object",
    "properties": {
        "header": {"type": "string"},
        "values": {"type": "array", "items": {"type": "string"}},
        "excludedValues": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["header"],
    "additionalProperties": False,
}
RULE_CONDITION = {
    "type": "object",
    "properties": {
        "urlFilter": {
            "type": "string",
            "minLength": 1,
            "pattern": "^[\\x00-\\x7f]*$",
            "not": {"pattern": "^\\|\\|\\*"},
        },
        "regexFilter": {"type": "string", "minLength": 1},
        "isUrlFilterCaseSensitive": {"type": "boolean"},
        "initiatorDomains": DOMAINS,
        "excludedInitiatorDomains": DOMAINS,
        "requestDomains": {**DOMAINS, "minItems": 1},
        "excludedRequestDomains": DOMAINS,
        "domains": DOMAINS,
        "excludedDomains": DOMAINS,
        "resourceTypes": {"type": "array", "items": RESOURCE_TYPE, "minItems": 1},
        "excludedResourceTypes": {"type": "array", "items": RESOURCE_TYPE},
        "requestMethods": {"type": "array", "items": REQUEST_METHOD, "minItems": 1},
        "excludedRequestMethods": {"type": "array", "items": REQUEST_METHOD},
        "domainType": {"enum": ["firstParty", "thirdParty"]},
        "tabIds": INTS,
        "excludedTabIds": INTS,
        "responseHeaders": {"type": "array", "items": HEADER_INFO},
        "excludedResponseHeaders": {"type": "array", "items": HEADER_INFO},
    },
    "additionalProperties": False,
    "not": {
        "anyOf": [
            {"required": ["urlFilter", "regexFilter"]},
            {"required": ["resourceTypes", "excludedResourceTypes"]},
        ]
    },
}
RULE_ACTION = {
    "type": "object",
    "properties": {
        "type": {
            "enum": [
                "block",
                "redirect",
                "allow",
                "upgradeScheme",
                "modifyHeaders",
                "allowAllRequests",
            ]
        },
        "redirect": REDIRECT,
        "requestHeaders": {"type": "array", "items": MODIFY_HEADER_INFO, "minItems": 1},
        "responseHeaders": {"type": "array", "items": MODIFY_HEADER_INFO, "minItems": 1},
    },
    "required": ["type"],
    "additionalProperties": False,
    "allOf": [
        {
            "if": {"properties": {"type": {"const": "redirect"}}},
            "then": {"required": ["redirect"]},
            "else": {"not": {"required": ["redirect"]}},
        }
    ],
}
RULE = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "chrome.declarativeNetRequest Rule",
    "type": "object",
    "properties": {
        "id": {"type": "integer", "minimum": 1},
        "priority": {"type": "integer", "minimum": 1},
        "action": RULE_ACTION,
        "condition": RULE_CONDITION,
    },
    "required": ["id", "action", "condition"],
    "additionalProperties": False,
    "allOf": [
        {
            "if": {
                "properties": {
                    "action": {
                        "properties": {"redirect": {"required": ["regexSubstitution"]}},
                        "required": ["redirect"],
                    }
                }
            },
            "then": {"properties": {"condition": {"required": ["regexFilter"]}}},
        }
    ],
}
RULESET = {"type": "array", "items": RULE}
