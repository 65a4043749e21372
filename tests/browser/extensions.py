"""Unpacked MV3 extensions for the browser tests: a DNR rule set as Chrome loads it, and
a "types" extension that tells which resource type Chrome itself gives each request (one
``modifyHeaders`` rule per type, setting ``X-Chrome-Type``)."""

from __future__ import annotations

import json
from pathlib import Path

from policies.dnr import DNR_RESOURCE_TYPES

CHROME_TYPES = DNR_RESOURCE_TYPES  # Chrome's ResourceType enum, kept in policies/dnr.py


def dnr_extension(folder: Path, rules: list[dict], name: str = "waylay-export") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    manifest = {
        "manifest_version": 3,
        "name": name,
        "version": "1.0",
        "permissions": ["declarativeNetRequest"],
        "host_permissions": ["<all_urls>"],
        "declarative_net_request": {
            "rule_resources": [{"id": "rules", "enabled": True, "path": "rules.json"}]
        },
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=1))
    (folder / "rules.json").write_text(json.dumps(rules, indent=1))
    return folder


def types_extension(folder: Path) -> Path:
    rules = [
        {
            "id": i,
            "priority": 1,
            "action": {
                "type": "modifyHeaders",
                "requestHeaders": [{"header": "x-chrome-type", "operation": "set", "value": t}],
            },
            "condition": {"resourceTypes": [t]},
        }
        for i, t in enumerate(CHROME_TYPES, 1)
    ]
    return dnr_extension(folder, rules, name="chrome-types")
