"""Summarise a py-spy speedscope profile: where the worker's samples went, by category and function.

    python bench/support/profile_summary.py PROFILE.json
"""

from __future__ import annotations

import json
import sys
from collections import Counter

# The first category (in this order) with a matching frame anywhere in the stack takes the sample.
CATEGORIES = (
    ("idle (waiting for tasks)", ("kombu/", "billiard/connection", "select.py", "poll")),
    ("database commit", ("psycopg/connection.py:Connection.commit",)),
    ("database (SQLAlchemy/psycopg)", ("sqlalchemy/", "psycopg/")),
    ("HTTP to the sandboxes", ("requests/", "urllib3/", "http/client")),
    ("Redis", ("redis/",)),
    ("mapping and hashing", ("connector/mapping",)),
    ("JSON", ("json/",)),
    ("logging", ("logging/",)),
)


def categorise(stack: list[dict]) -> str:
    where = [f"{frame.get('file', '')}:{frame.get('name', '')}" for frame in stack]
    for category, markers in CATEGORIES:
        if any(marker in w for w in where for marker in markers):
            return category
    return "other Python"


def summarise(path: str, top: int = 15) -> dict:
    data = json.load(open(path))
    frames = data["shared"]["frames"]
    categories: Counter = Counter()
    own: Counter = Counter()
    database_callers: Counter = Counter()  # our innermost function on the stack of a database sample
    total = 0
    for profile in data["profiles"]:
        for sample, weight in zip(profile["samples"], profile["weights"]):
            stack = [frames[i] for i in sample]
            category = categorise(stack)
            categories[category] += weight
            if category.startswith("database"):
                ours = [f for f in stack if "site-packages" not in f.get("file", "")
                        and ("/connector/" in f.get("file", "") or "/workers/" in f.get("file", ""))]
                if ours:
                    database_callers[ours[-1]["name"]] += weight
            if stack:
                leaf = stack[-1]
                own[f"{leaf.get('name')} ({leaf.get('file', '').split('site-packages/')[-1]}:{leaf.get('line')})"] += weight
            total += weight
    busy = total - categories["idle (waiting for tasks)"]
    return {
        "samples": total,
        "by_category_pct": {k: round(100 * v / total, 1) for k, v in categories.most_common()},
        "busy_by_category_pct": {k: round(100 * v / max(busy, 1), 1) for k, v in categories.most_common()
                                 if not k.startswith("idle")},
        "database_time_by_caller_pct": {k: round(100 * v / total, 1) for k, v in database_callers.most_common(top)},
        "top_own_time": [(name, round(100 * v / total, 1)) for name, v in own.most_common(top)],
    }


if __name__ == "__main__":
    print(json.dumps(summarise(sys.argv[1]), indent=1))
