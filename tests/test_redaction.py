"""One redaction by key name and by value shape (issue 17, item 15), used by the reports and the monitor."""

from __future__ import annotations

import json

import pytest

from analysis.core.redaction import REDACTED, is_secret_key, redact, redact_text, redact_url


@pytest.mark.parametrize("key", ["tokenizer", "max_tokens", "num_tokens", "author", "keyframe", "batch_key_pattern"])
def test_words_that_only_contain_a_secret_word_are_kept(key):
    assert not is_secret_key(key)
    assert redact({key: "bert-base"}) == {key: "bert-base"}


@pytest.mark.parametrize(
    "key", ["password", "db_password", "api_key", "apiKey", "WANDB_API_KEY", "access_token", "slack_webhook", "secret"]
)
def test_secret_names_are_redacted(key):
    assert redact({key: "x1"}) == {key: REDACTED}


@pytest.mark.parametrize(
    ("value", "kept", "gone"),
    [
        ("postgres://user:SECRETPW@db/x", "postgres://user:", "SECRETPW"),
        ("https://api.example.com/v1?key=QKEY&page=2", "page=2", "QKEY"),
        ("https://hooks.slack.com/services/T1/B2/HOOKSECRET", "hooks.slack.com", "HOOKSECRET"),
        ("https://discord.com/api/webhooks/123/DISCORDSECRET", "discord.com", "DISCORDSECRET"),
        ("use xoxb-1234567890-abcdefghij now", "use ", "xoxb-1234567890"),
        ("ghp_" + "a" * 36, "", "ghp_"),
        ("AKIAABCDEFGHIJKLMNOP", "", "AKIAABCDEFGHIJKLMNOP"),
        ("sk-" + "Z" * 40, "", "sk-ZZZZ"),
        ("Authorization: Bearer abcdefghijklmnop1234", "Bearer", "abcdefghijklmnop1234"),
    ],
)
def test_secret_shaped_values_are_redacted_whatever_their_key(value, kept, gone):
    out = redact({"db_url": value, "note": [value]})
    for text in (out["db_url"], out["note"][0]):
        assert gone not in text and kept in text and REDACTED in text


def test_ordinary_values_are_untouched():
    cfg = {"model": {"tokenizer": "bert-base", "max_tokens": 512, "lr": 0.1}, "git": "3f2a9c0d" * 5}
    cfg["data"] = "https://example.com/datasets/ocr?page=2"
    assert redact(cfg) == cfg


def test_given_secrets_are_removed_with_their_pieces_and_urls_show_only_the_host():
    url = "https://chat.example.com/v1/spaces/SPACE1234/messages?key=KEY12345&token=TOK12345"
    text = "POST /v1/spaces/SPACE1234/messages?key=KEY12345&token=TOK12345 failed; body echoed SPACE1234"
    clean = redact_text(text, [url])
    assert all(s not in clean for s in ("SPACE1234", "KEY12345", "TOK12345"))
    assert redact_url(url) == f"https://chat.example.com/{REDACTED}"


def test_deeply_nested_data_does_not_raise():
    deep: dict = {}
    node = deep
    for _ in range(5000):
        node["k"] = {}
        node = node["k"]
    json.dumps(redact(deep))  # bounded depth, no RecursionError


def test_reports_use_the_same_redaction():
    from analysis.reporting.values import redact as report_redact

    cfg = {"db_url": "postgres://user:SECRETPW@db/x", "tokenizer": "bert-base", "max_tokens": 512}
    assert report_redact(cfg) == redact(cfg)
    assert "SECRETPW" not in json.dumps(report_redact(cfg)) and report_redact(cfg)["max_tokens"] == 512
