"""Publishing a reviewed draft: write it into its YAML file and commit that to git.

The YAML files stay the source of truth (what `govfaq faq check`, the index and a
reviewer's `git diff` read), so publishing edits the file itself: only the lines of
the one entry are replaced (from its "- " line to the line before the next entry,
leaving comments and blank lines in front of the next entry where they are), so
every other entry stays byte for byte as its author wrote it. A new FAQ is appended
to the file that already holds FAQs of its field (faqs/staff.yaml when none does).

History is git, read and written with dulwich (no `git` program needed): a
repository *at* the content folder, created on the first publish with the folder
as it was as the first commit. Each publish is one commit, authored by the editor
("NAME <NAME@staff.govfaq>") and committed by the approver, with a `faq: ID` line
that the history page looks for. Why git and not a table of versions: the files
are already diffed and kept in git by whoever runs the service, `faq/history.py`
already compares with the last commit, and a revert is then just an older text.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .drafts import entry_yaml
from .yamlio import _TOP_ITEM, parse_yaml_list

_lock = threading.Lock()  # one publish at a time in this process: read, replace, write, commit
EMAIL_DOMAIN = "staff.govfaq"


class PublishError(RuntimeError):
    """Publishing failed; the file is as it was. Message in Japanese for staff."""


@dataclass(frozen=True)
class Change:
    commit_id: str
    author: str
    committer: str
    when: int  # seconds since the epoch
    message: str


def signature(name: str) -> bytes:
    return f"{name} <{name}@{EMAIL_DOMAIN}>".encode()


def locate(content_dir: Path, faq_id: str) -> tuple[Path, int] | None:
    """(file, 1-based first line) of the FAQ `faq_id` in faqs/*.yaml, or None."""
    for path in sorted((Path(content_dir) / "faqs").glob("*.yaml")):
        doc, _ = parse_yaml_list(path.read_text(encoding="utf-8"), str(path))
        if doc is None or not isinstance(doc.data, list):
            continue
        for index, item in enumerate(doc.data):
            if isinstance(item, dict) and item.get("id") == faq_id:
                return path, doc.line_of((index,))
    return None


def replace_entry(text: str, first_line: int, new_item: str) -> str:
    """`text` with the top-level list item starting at `first_line` replaced by `new_item`."""
    lines = text.splitlines(keepends=True)
    start = first_line - 1
    end = len(lines)
    for match in _TOP_ITEM.finditer(text):
        line = text.count("\n", 0, match.start())
        if line > start:
            end = line
            break
    # Comments and blank lines just before the next entry belong to it, not to this one.
    while end > start + 1 and (not lines[end - 1].strip() or lines[end - 1].lstrip().startswith("#")):
        end -= 1
    if not new_item.endswith("\n"):
        new_item += "\n"
    return "".join(lines[:start]) + new_item + "".join(lines[end:])


def target_file(content_dir: Path, kb, entry: dict[str, Any]) -> Path:
    for faq in kb.faqs:
        if faq.category[:1] == entry.get("category", [])[:1]:
            found = locate(content_dir, faq.id)
            if found:
                return found[0]
    return Path(content_dir) / "faqs" / "staff.yaml"


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def publish(content_dir: Path | str, kb, entry: dict[str, Any], author: str, approver: str, note: str = "") -> str:
    """Write `entry` into its file and commit it; returns the commit id (hex)."""
    content_dir = Path(content_dir)
    with _lock:
        found = locate(content_dir, entry["id"])
        if found:
            path, line = found
            before = path.read_text(encoding="utf-8")
            after = replace_entry(before, line, entry_yaml(entry))
        else:
            path = target_file(content_dir, kb, entry)
            before = path.read_text(encoding="utf-8") if path.exists() else ""
            after = before + ("" if not before or before.endswith("\n") else "\n") + entry_yaml(entry)
        doc, problems = parse_yaml_list(after, str(path))
        if doc is None or problems or not _holds(doc.data, entry):
            raise PublishError(f"{path.name} に書き込めませんでした（書いた後に読み直すと一致しません）。ファイルは変えていません")
        repo = _repo(content_dir)
        _write(path, after)
        try:
            return _commit(repo, content_dir, [path], author, approver,
                           f"FAQ {entry['id']} を公開（{note or '編集'}、承認: {approver}）\n\nfaq: {entry['id']}\n")
        except Exception as exc:
            _write(path, before)
            raise PublishError(f"git に記録できなかったため公開を取り消しました（{type(exc).__name__}: {exc}）") from exc
        finally:
            repo.close()


def _holds(items, entry: dict[str, Any]) -> bool:
    """Whether the list read back holds `entry` (compared as FAQs: a `|` block's last newline is
    not a difference)."""
    from pydantic import ValidationError

    from .schema import FAQ

    try:
        wanted = FAQ.model_validate(entry)
        return any(isinstance(i, dict) and i.get("id") == entry["id"] and FAQ.model_validate(i) == wanted for i in items)
    except ValidationError:
        return False


def _repo(content_dir: Path):
    from dulwich import porcelain
    from dulwich.repo import Repo

    if (content_dir / ".git").exists():
        return Repo(str(content_dir))
    repo = porcelain.init(str(content_dir))
    files = [p for p in content_dir.rglob("*") if p.is_file() and ".git" not in p.relative_to(content_dir).parts]
    if files:
        _commit(repo, content_dir, files, "govfaq", "govfaq", "公開前の内容（最初の記録）\n")
    return repo


def _commit(repo, content_dir: Path, paths: list[Path], author: str, committer: str, message: str) -> str:
    from dulwich import porcelain

    porcelain.add(repo, paths=[str(p) for p in paths])
    commit_id = porcelain.commit(repo, message=message.encode(), author=signature(author),
                                 committer=signature(committer), commit_timestamp=int(time.time()),
                                 author_timestamp=int(time.time()))
    return commit_id.decode() if isinstance(commit_id, bytes) else str(commit_id)


def history(content_dir: Path | str, faq_id: str, limit: int = 50) -> list[Change]:
    """Commits that published `faq_id`, newest first (empty outside a repository)."""
    from dulwich.repo import Repo

    content_dir = Path(content_dir)
    if not (content_dir / ".git").exists():
        return []
    marker = f"faq: {faq_id}"
    out = []
    with Repo(str(content_dir)) as repo:
        try:
            walker = repo.get_walker()
        except KeyError:
            return []
        for item in walker:
            commit = item.commit
            message = commit.message.decode("utf-8", "replace")
            if marker in message.splitlines():
                out.append(Change(commit.id.decode(), _name(commit.author), _name(commit.committer),
                                  commit.commit_time, message.splitlines()[0]))
                if len(out) >= limit:
                    break
    return out


def _name(signature: bytes) -> str:
    return signature.decode("utf-8", "replace").split(" <", 1)[0]


def entry_before(content_dir: Path | str, commit_id: str, faq_id: str) -> dict[str, Any] | None:
    """The entry `faq_id` as it was before the commit `commit_id` (its first parent), or None."""
    from dulwich.repo import Repo

    from .history import committed_entries

    with Repo(str(content_dir)) as repo:
        try:
            commit = repo[commit_id.encode()]
        except (KeyError, ValueError):
            return None
        if not getattr(commit, "parents", None):
            return None
        parent = commit.parents[0]
    entries = committed_entries(Path(content_dir), at=parent)
    return (entries or {}).get(faq_id)
