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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

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


# ------------------------------------------------------------------ the history of one FAQ
#
# Every commit of the content repository whose FAQ files give `faq_id` another entry than
# its first parent did: made by publishing in the browser, with the git command or by any
# other tool. Why read the trees and not look for a marker in the message: an FAQ is also
# edited by hand and committed with `git commit`, and its page must show those changes too
# (and let them be reverted). Entries are compared as parsed mappings, so a commit that
# only re-indents, adds a comment or moves the entry to another file is not a change.

@dataclass(frozen=True)
class Change:
    commit_id: str
    author: str
    committer: str
    when: int  # seconds since the epoch
    message: str  # its first line
    kind: Literal["created", "changed", "deleted"]
    before: dict[str, Any] | None  # the entry in the first parent (None: it did not exist)
    after: dict[str, Any] | None  # the entry in this commit (None: the commit removed it)

    @property
    def diff(self) -> str:
        from .drafts import diff

        return diff(self.before, self.after, self.commit_id[:12], ("変更前", "変更後"))


class _Trees:
    """FAQ entries of the faqs/ folder at any commit, each YAML blob parsed once."""

    def __init__(self, repo, folder: bytes):
        self.repo, self.folder = repo, folder
        self._blobs: dict[bytes, dict[str, dict[str, Any]]] = {}
        self._folders: dict[bytes | None, dict[str, dict[str, Any]]] = {}

    def folder_of(self, commit) -> bytes | None:
        from dulwich.object_store import tree_lookup_path

        try:
            return tree_lookup_path(self.repo.get_object, commit.tree, self.folder)[1] if self.folder else commit.tree
        except KeyError:
            return None

    def entries(self, folder_id: bytes | None) -> dict[str, dict[str, Any]]:
        if folder_id not in self._folders:
            out: dict[str, dict[str, Any]] = {}
            for item in self.repo[folder_id].items() if folder_id else []:
                if item.path.endswith(b".yaml"):
                    out |= {k: v for k, v in self._blob(item.sha, item.path).items() if k not in out}
            self._folders[folder_id] = out
        return self._folders[folder_id]

    def _blob(self, sha: bytes, name: bytes) -> dict[str, dict[str, Any]]:
        if sha not in self._blobs:
            obj = self.repo[sha]
            doc, _ = parse_yaml_list(obj.data.decode("utf-8", "replace"), name.decode("utf-8", "replace")) \
                if obj.type_name == b"blob" else (None, [])
            found: dict[str, dict[str, Any]] = {}
            for entry in doc.data if doc is not None and isinstance(doc.data, list) else []:
                if isinstance(entry, dict) and isinstance(entry.get("id"), str):
                    found.setdefault(entry["id"], entry)
            self._blobs[sha] = found
        return self._blobs[sha]


def _open(content_dir: Path):
    """(repository, path of faqs/ inside it) for the repository holding `content_dir`, or None."""
    from dulwich.errors import NotGitRepository
    from dulwich.repo import Repo

    try:
        repo = Repo.discover(str(content_dir))
    except NotGitRepository:
        return None
    try:
        folder = (Path(content_dir).resolve() / "faqs").relative_to(Path(repo.path).resolve())
    except ValueError:
        repo.close()
        return None
    return repo, folder.as_posix().encode()


def _person(signature: bytes) -> str:
    return signature.decode("utf-8", "replace").split(" <", 1)[0]


def _change(trees: _Trees, commit, faq_id: str) -> Change | None:
    here = trees.folder_of(commit)
    parent = trees.repo[commit.parents[0]] if commit.parents else None
    there = trees.folder_of(parent) if parent is not None else None
    if parent is not None and here == there:
        return None  # the FAQ files did not change in this commit
    after = trees.entries(here).get(faq_id)
    before = trees.entries(there).get(faq_id) if parent is not None else None
    if before == after:
        return None
    kind = "created" if before is None else "deleted" if after is None else "changed"
    message = commit.message.decode("utf-8", "replace").strip().splitlines()
    return Change(commit.id.decode(), _person(commit.author), _person(commit.committer), commit.commit_time,
                  message[0] if message else "", kind, before, after)


def changes_of(content_dir: Path | str, faq_id: str, limit: int = 50, max_commits: int = 5000) -> list[Change]:
    """The commits that changed the FAQ `faq_id`, newest first (empty outside a repository).
    `max_commits` bounds the walk on a long history: the page shows what it found."""
    opened = _open(Path(content_dir))
    if opened is None:
        return []
    repo, folder = opened
    out: list[Change] = []
    with repo:
        try:
            walker = repo.get_walker(max_entries=max_commits)
        except KeyError:
            return []  # no commit yet
        trees = _Trees(repo, folder)
        for item in walker:
            change = _change(trees, item.commit, faq_id)
            if change is not None:
                out.append(change)
                if len(out) >= limit:
                    break
    return out


def change_in(content_dir: Path | str, commit_id: str, faq_id: str) -> Change | None:
    """What the commit `commit_id` did to the FAQ `faq_id`; None if the commit is unknown or
    left that FAQ as it was."""
    opened = _open(Path(content_dir))
    if opened is None or not commit_id:
        return None
    repo, folder = opened
    with repo:
        try:
            commit = repo[commit_id.encode("ascii")]
        except (KeyError, ValueError, UnicodeEncodeError):
            return None
        if commit.type_name != b"commit":
            return None
        return _change(_Trees(repo, folder), commit, faq_id)
