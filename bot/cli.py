"""The `govfaq` command line."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from faq.loader import CONTENT_DIR, load_knowledge_base


def _cmd_faq_check(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    result = load_knowledge_base(args.dir, args.sources)
    elapsed = time.perf_counter() - started
    for problem in result.problems:
        print(problem)
    kb = result.kb
    nodes = len(kb.category_titles())
    summary = (
        f"{len(kb.faqs)} FAQs, {len(kb.contacts)} contacts, {nodes} scenario nodes, "
        f"{len(kb.synonyms)} synonym groups: {len(result.problems)} problem(s) in {elapsed:.2f} s"
    )
    print(summary, file=sys.stderr)
    return 1 if result.problems else 0


def _cmd_faq_coverage(args: argparse.Namespace) -> int:
    from faq.coverage import coverage, format_table

    result = load_knowledge_base(args.dir, args.sources)
    rows = coverage(result.kb)
    if args.json:
        print(json.dumps([row.__dict__ for row in rows], ensure_ascii=False, indent=1))
    else:
        print(format_table(rows, only_zero=args.zero))
    return 0


def _cmd_faq_export(args: argparse.Namespace) -> int:
    from faq.govbot_csv import export_csv

    result = load_knowledge_base(args.dir, args.sources)
    data = export_csv(result.kb.faqs)
    if args.out in (None, "-"):
        sys.stdout.buffer.write(data)
    else:
        Path(args.out).write_bytes(data)
        print(f"wrote {len(result.kb.faqs)} FAQs to {args.out}", file=sys.stderr)
    return 0


def _cmd_faq_import(args: argparse.Namespace) -> int:
    from faq.govbot_csv import import_csv

    path = Path(args.csv)
    if not path.is_file():
        print(f"{path}: file not found", file=sys.stderr)
        return 2
    text, problems, count = import_csv(path)
    for problem in problems:
        print(problem)
    if args.out in (None, "-"):
        sys.stdout.write(text)
    else:
        out = Path(args.out)
        if out.exists() and not args.force:
            print(f"{out}: exists; pass --force to overwrite", file=sys.stderr)
            return 2
        out.write_text(text, encoding="utf-8")
    print(f"imported {count} row(s), {len(problems)} bad row(s)", file=sys.stderr)
    return 1 if problems else 0


def _cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from bot.settings import get_settings

    settings = get_settings()
    uvicorn.run(
        "web.app:app_from_env",
        factory=True,
        host=args.host or settings.host,
        port=args.port or settings.port,
        workers=args.workers,
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="govfaq", description="Govbot-style FAQ service for Japanese public administration")
    commands = parser.add_subparsers(dest="command", required=True)

    faq = commands.add_parser("faq", help="check, measure, import and export the FAQ content")
    faq_commands = faq.add_subparsers(dest="faq_command", required=True)

    def content_args(p: argparse.ArgumentParser, positional: bool = False) -> None:
        if positional:
            p.add_argument("dir", nargs="?", default=CONTENT_DIR, type=Path, help="content folder (default: shipped content)")
        else:
            p.add_argument("--dir", default=CONTENT_DIR, type=Path, help="content folder (default: shipped content)")
        p.add_argument("--sources", type=Path, default=None, help="folder of source documents (default: faq/sources)")

    check = faq_commands.add_parser("check", help="validate every file; one line per problem as path:line: field: message")
    content_args(check, positional=True)
    check.set_defaults(func=_cmd_faq_check)

    cov = faq_commands.add_parser("coverage", help="FAQs per section of each source document")
    content_args(cov)
    cov.add_argument("--zero", action="store_true", help="only sections without FAQs")
    cov.add_argument("--json", action="store_true", help="machine-readable output")
    cov.set_defaults(func=_cmd_faq_coverage)

    exp = faq_commands.add_parser("export", help="write the FAQs as Govbot CSV (UTF-8 with BOM)")
    content_args(exp)
    exp.add_argument("--out", "-o", default=None, help="output file (default: standard output)")
    exp.set_defaults(func=_cmd_faq_export)

    imp = faq_commands.add_parser("import", help="read a Govbot CSV (UTF-8, UTF-8 BOM or CP932) into FAQ YAML")
    imp.add_argument("csv", help="the CSV file")
    imp.add_argument("--out", "-o", default=None, help="YAML file to write, e.g. faq/content/faqs/imported.yaml (default: standard output)")
    imp.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    imp.set_defaults(func=_cmd_faq_import)

    serve = commands.add_parser("serve", help="start the web service")
    serve.add_argument("--host", default=None)
    serve.add_argument("--port", type=int, default=None)
    serve.add_argument("--workers", type=int, default=1)
    serve.set_defaults(func=_cmd_serve)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
