"""The docs cannot drift: every `manage.py` command named in README.md and docs/*.md (shell blocks
and inline code) exists and builds its --help, and every URL path they name resolves in the app."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.core.management import get_commands, load_command_class
from django.urls import Resolver404, resolve

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
COMMAND = re.compile(r"manage\.py\s+([a-z][a-z0-9_]*)")
CODE = re.compile(r"```[a-z]*\n(.*?)```|`([^`\n]+)`", re.S)
PATH = re.compile(r"(?:^|\s)(/[A-Za-z0-9_<>:.\-/{},]*)")
# Paths in code that are files or other servers, not the app's URLs.
NOT_URLS = ("/usr/", "/etc/", "/proc/", "/opt/", "/var/", "/tmp/", "/dev/", "/run/", "/root/", "/work/",
            "/home/", "/sys/", "/srv/", "/dicom-web", "/index.html", "/AdminLogin.html", "/Detection.html",
            "/UpdateProfile.html")


def code_spans(text: str) -> list[str]:
    return [block or inline for block, inline in CODE.findall(text)]


def commands_in(text: str) -> set[str]:
    return {name for span in code_spans(text) for name in COMMAND.findall(span)}


def paths_in(text: str) -> set[str]:
    found = set()
    for span in code_spans(text):
        if "\n" in span.strip():  # a block: only lines that call the app (curl, a browser URL)
            span = " ".join(re.findall(r"https?://[^/\s]+(/[^\s'\"]*)", span))
        for path in PATH.findall(span):
            path = path.split("?")[0].split("#")[0].rstrip(".,:;")
            if path and path != "/" * len(path) and not path.startswith(NOT_URLS) and "." not in path.split("/")[1]:
                found.update(_alternatives(path))
    return found


def _alternatives(path: str) -> list[str]:
    """`/a/{x,y}.png` -> `/a/x.png`, `/a/y.png` (the shell's brace notation the docs use)."""
    match = re.search(r"\{([^{}]*)\}", path)
    if not match:
        return [path]
    return [alt for choice in match.group(1).split(",")
            for alt in _alternatives(path[:match.start()] + choice + path[match.end():])]


def _is_prefix(path: str) -> bool:
    """A top-level prefix named on its own (`/api/`): some URL pattern starts with it."""
    from django.urls import URLResolver, get_resolver

    def routes(patterns, prefix=""):
        for p in patterns:
            route = prefix + str(p.pattern)
            yield route
            if isinstance(p, URLResolver):
                yield from routes(p.url_patterns, route)

    return path.count("/") == 2 and any(r.startswith(path[1:]) for r in routes(get_resolver().url_patterns))


def unknown_commands(names: set[str]) -> list[str]:
    """Names that are no management command, or whose parser cannot be built."""
    known = get_commands()
    bad = []
    for name in sorted(names):
        if name not in known:
            bad.append(name)
            continue
        load_command_class(known[name], name).create_parser("manage.py", name).format_help()
    return bad


def unresolved(paths: set[str]) -> list[str]:
    bad = []
    for path in sorted(paths):
        concrete = re.sub(r"<[^>]+>", "1", path)
        try:
            resolve(concrete)
        except Resolver404:
            if not _is_prefix(path):
                bad.append(path)
    return bad


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_documented_command_exists_and_every_path_resolves(doc):
    text = doc.read_text()
    assert not unknown_commands(commands_in(text))
    assert not unresolved(paths_in(text))


def test_the_docs_name_commands_and_paths_at_all():
    everything = "\n".join(d.read_text() for d in DOCS)
    commands, paths = commands_in(everything), paths_in(everything)
    assert {"analyze", "analyze_series", "series_worker", "dicom_listener", "prepare_model"} <= commands
    assert {"/detect/", "/api/analyses/", "/api/series/<id>/labels/"} <= paths


def test_a_renamed_command_or_path_is_caught():
    text = "```sh\n.venv/bin/python manage.py analyse_slice x.dcm\ncurl http://127.0.0.1:8000/api/slices/\n```\n" \
           "Then open `/analyses/<id>/report/` and `/analyses/<id>/printout/`."
    assert unknown_commands(commands_in(text)) == ["analyse_slice"]
    assert unresolved(paths_in(text)) == ["/analyses/<id>/printout/", "/api/slices/"]


def test_headings_name_no_issue_numbers_and_the_readme_is_short():
    for doc in DOCS:
        headings = [line for line in doc.read_text().splitlines() if line.startswith("#")]
        assert not [h for h in headings if re.search(r"\bissue\b", h, re.I)], doc.name
    assert len((ROOT / "README.md").read_text().splitlines()) <= 150
