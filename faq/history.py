"""An answer that changed while `updated` did not: residents would read an old 更新 date on new text.

The reference is the last commit of the git repository holding the content
folder, read with dulwich (no `git` program needed). Why git and not a
record of answer hashes kept beside the files: the content is already kept
in git (the shipped folder is, and publishing from the browser will commit
there, issue 15 part 2), so the last commit *is* the last published text;
a second record could disagree with it, would have to be written by every
way of editing, and would be one more file to lose. Outside a repository
there is nothing to compare with, and no warning.

FAQs are matched by id across all of `faqs/*.yaml`, so moving an entry to
another file is not a change. Whitespace is folded before comparing: a
re-wrapped line is not a new answer.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from .schema import FAQ
from .yamlio import parse_yaml_list


def committed_entries(content_dir: Path, at: bytes | None = None) -> dict[str, dict[str, Any]] | None:
    """FAQ id -> its entry as written in the last commit (or the commit `at`; raw YAML mapping);
    None when the content folder is not in a git repository or the repository has no commit yet."""
    from dulwich.errors import NotGitRepository
    from dulwich.object_store import tree_lookup_path
    from dulwich.repo import Repo

    try:
        repo = Repo.discover(str(content_dir))
    except NotGitRepository:
        return None
    with repo:
        try:
            head = repo[at or repo.head()]
        except KeyError:
            return None
        try:
            folder = (Path(content_dir).resolve() / "faqs").relative_to(Path(repo.path).resolve())
            _, tree_id = tree_lookup_path(repo.get_object, head.tree, folder.as_posix().encode())
        except (ValueError, KeyError):
            return {}  # the folder is outside the work tree, or not committed yet: every FAQ is new
        entries: dict[str, dict[str, Any]] = {}
        for item in repo[tree_id].items():
            name = item.path.decode("utf-8", "replace")
            if not name.endswith(".yaml"):
                continue
            doc, _ = parse_yaml_list(repo[item.sha].data.decode("utf-8", "replace"), name)
            for entry in doc.data if doc is not None and isinstance(doc.data, list) else []:
                if isinstance(entry, dict) and isinstance(entry.get("id"), str):
                    entries.setdefault(entry["id"], entry)
        return entries


def _folded(text: object) -> str:
    return " ".join(str(text).split())


def stale_updated(faq: FAQ, committed: dict[str, Any] | None, today: dt.date) -> str | None:
    """The warning for `faq` if its answer differs from the committed one while `updated` is
    not later than the committed date; None otherwise (and for an FAQ new since the commit)."""
    if committed is None or "answer" not in committed or _folded(committed["answer"]) == _folded(faq.answer):
        return None
    try:
        before = dt.date.fromisoformat(str(committed.get("updated", "")).strip())
    except ValueError:
        before = None
    if before is not None and faq.updated > before:
        return None
    return f"回答が変わりましたが updated が {faq.updated.isoformat()} のままです（今日の日付 {today.isoformat()} にしてください）"
