"""Data-root confinement for a dashboard shared by a team (analysis/core/paths.py): every typed path resolves
under the operator's roots (`..`, symlinks, absolute paths and `~` cannot leave them), the error is the same
whether or not the path exists (no file-existence oracle), and test alerts only reach allowed hosts."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from analysis.core.errors import AnalyzerError
from analysis.core.paths import (
    ENV_ALLOWED_HOSTS,
    ENV_DATA_ROOTS,
    HostNotAllowed,
    PathOutsideRoots,
    allowed_hosts,
    check_host,
    confine,
    data_roots,
)


@pytest.fixture
def layout(tmp_path: Path) -> dict[str, Path]:
    root = tmp_path / "root"
    (root / "runs" / "wandb").mkdir(parents=True)
    (root / "data").mkdir()
    outside = tmp_path / "secret"
    outside.mkdir()
    (outside / "key.png").write_bytes(b"x")
    (root / "link_out").symlink_to(outside)  # a symlink inside the root that points out of it
    (root / "link_in").symlink_to(root / "data")
    return {"root": root, "outside": outside}


def test_paths_inside_the_roots_resolve(layout):
    root = layout["root"]
    assert confine(root / "data", [root]) == (root / "data").resolve()
    assert confine(str(root), [root]) == root.resolve()
    assert confine(root / "runs" / ".." / "data", [root]) == (root / "data").resolve()
    assert confine(root / "link_in", [root]) == (root / "data").resolve()  # symlinks followed, staying inside
    assert confine(root / "not-yet-there", [root]) == (root / "not-yet-there").resolve()


@pytest.mark.parametrize(
    "escape",
    [
        lambda r, o: r / ".." / "secret",  # `..`
        lambda r, o: r / "data" / ".." / ".." / "secret" / "key.png",
        lambda r, o: r / "link_out",  # a symlink out
        lambda r, o: r / "link_out" / "key.png",
        lambda r, o: o,  # an absolute path elsewhere
        lambda r, o: Path("/etc/passwd"),
        lambda r, o: Path(str(r) + "-sibling"),  # a prefix of the root's name is not inside it
    ],
)
def test_paths_outside_the_roots_are_refused(layout, escape):
    root, outside = layout["root"], layout["outside"]
    with pytest.raises(PathOutsideRoots) as info:
        confine(escape(root, outside), [root])
    assert isinstance(info.value, AnalyzerError)  # shown as a message by the app and the CLI
    assert "outside the allowed data roots" in str(info.value) and str(root.resolve()) in str(info.value)


def test_home_and_relative_paths_are_resolved_before_the_check(layout, monkeypatch):
    root = layout["root"]
    monkeypatch.setenv("HOME", str(root))
    assert confine("~/data", [root]) == (root / "data").resolve()
    monkeypatch.setenv("HOME", str(layout["outside"]))
    with pytest.raises(PathOutsideRoots):
        confine("~/key.png", [root])
    monkeypatch.chdir(root / "runs")
    assert confine("../data", [root]) == (root / "data").resolve()
    with pytest.raises(PathOutsideRoots):
        confine("../../secret", [root])


def test_no_file_existence_oracle(layout):
    root, outside = layout["root"], layout["outside"]
    messages = []
    for name in ("key.png", "missing.png"):
        with pytest.raises(PathOutsideRoots) as info:
            confine(f"{root}/../secret/{name}", [root])
        messages.append(str(info.value).replace(name, "NAME"))
    assert messages[0] == messages[1]
    assert (outside / "key.png").exists()


def test_broken_paths_are_a_clear_error(layout):
    root = layout["root"]
    (root / "loop").symlink_to(root / "loop")
    for bad in ("bad\0name", str(root / "loop" / "x")):  # ValueError / RuntimeError from pathlib otherwise
        with pytest.raises(PathOutsideRoots, match="Cannot resolve the path"):
            confine(bad, [root])


def test_confinement_is_off_without_roots(layout, monkeypatch):
    monkeypatch.delenv(ENV_DATA_ROOTS, raising=False)
    assert data_roots() == ()
    assert confine("/etc/passwd") == Path("/etc/passwd")  # unchanged behaviour on a personal machine
    monkeypatch.setenv("HOME", str(layout["outside"]))
    assert confine("~/key.png") == layout["outside"] / "key.png"


def test_roots_come_from_the_environment(layout, monkeypatch):
    root, outside = layout["root"], layout["outside"]
    monkeypatch.setenv(ENV_DATA_ROOTS, f"{root}{os.pathsep}{os.pathsep} {outside} ")
    assert data_roots() == (root.resolve(), outside.resolve())
    assert confine(outside / "key.png") == (outside / "key.png").resolve()
    monkeypatch.setenv(ENV_DATA_ROOTS, str(root))
    with pytest.raises(PathOutsideRoots):
        confine(outside / "key.png")


def test_alert_hosts_allow_list(monkeypatch):
    monkeypatch.delenv(ENV_ALLOWED_HOSTS, raising=False)
    assert allowed_hosts() == ("hooks.slack.com",)
    check_host("https://hooks.slack.com/services/T/B/SECRET", allowed_hosts())
    for bad in ("http://127.0.0.1:8080/hook", "https://hooks.slack.com.evil.example/x", "http://169.254.169.254/",
                "https://user:pw@internal/x", "localhost", ""):  # fmt: skip
        with pytest.raises(HostNotAllowed) as info:
            check_host(bad, allowed_hosts())
        assert "SECRET" not in str(info.value) and "pw" not in str(info.value)
    monkeypatch.setenv(ENV_ALLOWED_HOSTS, "Chat.Example.com, smtp.example.com")
    check_host("https://chat.example.com/v1/hook?key=SECRET", allowed_hosts())
    check_host("smtp.example.com", allowed_hosts())
    with pytest.raises(HostNotAllowed) as info:
        check_host("https://hooks.slack.com/services/T/B/SECRET", allowed_hosts())
    assert "hooks.slack.com" in str(info.value) and "SECRET" not in str(info.value)


@pytest.mark.slow
def test_sidebar_refuses_a_wandb_dir_outside_the_roots(layout, monkeypatch):
    """The real app (AppTest): a confined server shows the error for an outside path and accepts an inside one."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    st.cache_data.clear()
    st.cache_resource.clear()
    root, outside = layout["root"], layout["outside"]
    monkeypatch.setenv(ENV_DATA_ROOTS, str(root))
    monkeypatch.setenv("WANDB_DIR", str(root / "runs"))  # the default wandb dir: inside, empty
    at = AppTest.from_file("../app.py", default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    assert [w.value for w in at.sidebar.warning] == ["No runs in this directory."]
    at.sidebar.text_input(key="wandb_dir").set_value(f"{root}/../secret").run()
    assert not at.exception, at.exception
    errors = [e.value for e in at.sidebar.error]
    assert len(errors) == 1 and "outside the allowed data roots" in errors[0], errors
    at.sidebar.text_input(key="wandb_dir").set_value(str(outside / "missing")).run()
    assert "outside the allowed data roots" in at.sidebar.error[0].value  # the same answer: no oracle


@pytest.mark.slow
def test_test_alert_refuses_hosts_outside_the_allow_list_when_confined(tmp_path, monkeypatch):
    """Monitor settings on a confined server: "Send test alert" to a webhook on 127.0.0.1 is refused before any
    request is made (a real HTTP server counts them); without confinement the same webhook is reached."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    import streamlit as st
    from streamlit.testing.v1 import AppTest

    hits: list[str] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            hits.append(self.path)
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        (tmp_path / "wandb").mkdir()
        monkeypatch.setenv("WANDB_DIR", str(tmp_path))
        monkeypatch.setenv("SLACK_WEBHOOK_URL", f"http://127.0.0.1:{server.server_address[1]}/services/T/B/SECRET")
        monkeypatch.delenv(ENV_ALLOWED_HOSTS, raising=False)
        for roots, refused in ((str(tmp_path), True), ("", False)):
            monkeypatch.setenv(ENV_DATA_ROOTS, roots)
            st.cache_data.clear()
            st.cache_resource.clear()
            at = AppTest.from_file("../app.py", default_timeout=60)
            at.run()
            at.switch_page("pages/monitor_page.py").run()
            at.button(key="mon_test_alert").click().run()
            assert not at.exception, at.exception
            texts = [e.value for e in at.error] + [s.value for s in at.success] + [i.value for i in at.info]
            if refused:
                assert hits == [] and any("'127.0.0.1' is not allowed" in t for t in texts), texts
                assert not any("SECRET" in t for t in texts)
            else:
                assert len(hits) == 1 and any(t.startswith("slack") for t in texts), (hits, texts)
    finally:
        server.shutdown()
        server.server_close()
