"""How the approval page shows arguments: exact normalized JSON, long values folded, nothing unescaped."""

from __future__ import annotations

import json
import re
from html import unescape

from services.approvals.web.client_configs import client_configs
from services.approvals.web.render import FOLD_CHARS, duration, folded_json


def text_of(html: str) -> str:
    """What a reader sees: the markup removed, entities decoded."""
    return unescape(re.sub(r"<[^>]+>", "", html))


def test_short_arguments_render_as_sorted_pretty_json() -> None:
    args = {"b": [1, 2], "a": {"y": None, "x": True}, "c": "hi"}
    assert text_of(str(folded_json(args))) == json.dumps(args, indent=2, sort_keys=True)


def test_a_long_string_is_folded_but_kept_whole() -> None:
    long = "x" * (FOLD_CHARS + 500)
    html = str(folded_json({"body": long}))
    assert "<details" in html and f"{len(long):,} characters" in html
    assert long in html, "the full value is on the page, one click away"


def test_markup_in_arguments_is_escaped() -> None:
    html = str(folded_json({"q": "<script>alert(1)</script>"}))
    assert "<script>" not in html and "&lt;script&gt;" in html


def test_durations_read_naturally() -> None:
    assert duration(5) == "5 s"
    assert duration(125) == "2 min 5 s"
    assert duration(7300) == "2 h 1 min"


def test_every_client_snippet_carries_the_url_and_key() -> None:
    configs = client_configs("https://ap.example/mcp", "ap_secret")
    assert [c.client for c in configs] == ["Claude Desktop", "Claude Code", "Cursor", "VS Code"]
    assert all("https://ap.example/mcp" in c.text and "ap_secret" in c.text for c in configs)
