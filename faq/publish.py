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
from pathlib import Path
from typing import Any

from .drafts import entry_yaml
from .yamlio import _TOP_ITEM, parse_yaml_list

_lock = threading.Lock()  # one publish at a time in this process: read, replace, write, commit
EMAIL_DOMAIN = "staff.govfaq"


class PublishError(RuntimeError):
    """Publishing failed; the file is as it was. Message in Japanese for staff."""


def signature(name: str) -> bytes:
    return f"{name} <{name}@{EMAIL_DOMAIN}>".encode()


def locate(content_dir: Path, faq_id: str) -> tuple[Path, int] | None:
    """(file, 1-based first line) of the FAQ `faq_id` in faqs/*.yaml, or None."""
    found = _find(content_dir, faq_id)
    return found[:2] if found else None


def entry_in_file(content_dir: Path | str, faq_id: str) -> dict[str, Any] | None:
    """The FAQ `faq_id` as its file holds it now (which may be newer than what is served, when
    someone edited the file and has not reloaded): what a draft replaces, so what its diff is against."""
    found = _find(Path(content_dir), faq_id)
    return found[2] if found else None


def _find(content_dir: Path, faq_id: str) -> tuple[Path, int, dict[str, Any]] | None:
    for path in sorted((Path(content_dir) / "faqs").glob("*.yaml")):
        doc, _ = parse_yaml_list(path.read_text(encoding="utf-8"), str(path))
        if doc is None or not isinstance(doc.data, list):
            continue
        for index, item in enumerate(doc.data):
            if isinstance(item, dict) and item.get("id") == faq_id:
                return path, doc.line_of((index,)), item
    return None


def replace_entry(text: str, first_line: int, new_item: str) -> str:
    """`text` with the top-level list item starting at `first_line` replaced by `new_item`."""
    start, end, lines = _item_lines(text, first_line)
    if not new_item.endswith("\n"):
        new_item += "\n"
    return "".join(lines[:start]) + new_item + "".join(lines[end:])


def cut_entry(text: str, first_line: int) -> str:
    """`text` without the top-level list item starting at `first_line`, and the comment lines right
    above it (they are about it, as `replace_entry` counts them). A blank line in front goes too
    when one follows it (or it was the last), so the file keeps its spacing."""
    start, end, lines = _item_lines(text, first_line)
    while start > 0 and lines[start - 1].lstrip().startswith("#"):
        start -= 1
    if start > 0 and not lines[start - 1].strip() and (end >= len(lines) or not lines[end].strip()):
        start -= 1
    return "".join(lines[:start]) + "".join(lines[end:])


def _item_lines(text: str, first_line: int) -> tuple[int, int, list[str]]:
    """(first, one past the last) 0-based line of the list item starting at `first_line`."""
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
    return start, end, lines


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
        return _publish(content_dir, kb, entry, author, approver, note)


def _publish(content_dir: Path, kb, entry: dict[str, Any], author: str, approver: str, note: str) -> str:
    if True:
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
        return _write_and_commit(content_dir, path, before, after, author, approver,
                                 f"FAQ {entry['id']} を公開（{note or '編集'}、承認: {approver}）\n\nfaq: {entry['id']}\n")


def remove(content_dir: Path | str, faq_id: str, author: str, approver: str, note: str = "") -> str:
    """Take the FAQ `faq_id` out of its file (its lines only, as publishing replaces them) and commit
    that; returns the commit id. This is how the creation of an FAQ is reverted."""
    content_dir = Path(content_dir)
    with _lock:
        found = locate(content_dir, faq_id)
        if found is None:
            raise PublishError(f"FAQ {faq_id} がファイルに見つかりません（すでに削除されています）")
        path, line = found
        before = path.read_text(encoding="utf-8")
        after = cut_entry(before, line)
        doc, problems = parse_yaml_list(after, str(path))
        items = doc.data if doc is not None and isinstance(doc.data, list) else [] if doc is not None and doc.data is None else None
        if items is None or problems or any(isinstance(i, dict) and i.get("id") == faq_id for i in items):
            raise PublishError(f"{path.name} から FAQ {faq_id} を取り除けませんでした。ファイルは変えていません")
        return _write_and_commit(content_dir, path, before, after, author, approver,
                                 f"FAQ {faq_id} を削除（{note or '削除'}、承認: {approver}）\n\nfaq: {faq_id}\n")


def _write_and_commit(content_dir: Path, path: Path, before: str, after: str, author: str, approver: str,
                      message: str) -> str:
    repo = _repo(content_dir)
    _write(path, after)
    try:
        return _commit(repo, content_dir, [path], author, approver, message)
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
