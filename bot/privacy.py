"""Residents' text is personal data: mask it before anything is stored or logged.

`mask_personal_data(text)` is the one masking step. The query log, feedback
comments, the turns of a session, the access log and every log record (see
`install_log_masking`) go through it, and the staff pages show only its output.

1. Clean: drop zero-width, bidi and other invisible characters (a number split by
   U+200B is still a number), then NFKC (full-width digits, ＠, （）, ｰ).
2. A shadow copy of the text with runs of kanji numerals as digits
   (〇九〇-一二三四-五六七八 → 090-1234-5678), of the same length, so that what
   is found in the shadow is cut out of the clean text at the same place.
3. One compiled regular expression, one left-to-right pass over the shadow; each
   match is classified by `_classify` and replaced by a typed placeholder
   (［電話番号］［メール］［個人番号］［カード番号］［口座番号］［番号］［郵便番号］
   ［住所］［生年月日］［氏名］). A label before a number (口座番号, 記号, 電話) is kept,
   only its value goes.

What stays, so that staff can still read what residents asked: short numbers
and figures with a unit (3年, 550万円, 100,000円), dates (令和8年2月20日,
2026/02/20) unless marked as a birth date, a city or town alone
(鹿児島市に住んでいます), and statements about oneself that are not a name
(私は学生です). Anything with six or more digits that is none of these is
masked, as ［番号］ at least: a number of unknown kind is still a number.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from urllib.parse import urlsplit

PLACEHOLDERS = {
    "phone": "［電話番号］",
    "email": "［メール］",
    "my_number": "［個人番号］",
    "card": "［カード番号］",
    "account": "［口座番号］",
    "number": "［番号］",
    "postal": "［郵便番号］",
    "address": "［住所］",
    "birth": "［生年月日］",
    "name": "［氏名］",
}

# ------------------------------------------------------------------ 1. clean
# Soft hyphen, combining grapheme joiner, Arabic letter mark, Hangul fillers, Mongolian vowel separator,
# zero-width space/joiners, LRM/RLM, bidi embeddings, overrides and isolates, word joiner and invisible
# operators, variation selectors, BOM, interlinear annotation marks, tag characters.
_INVISIBLE = re.compile(
    "[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e\u2060-\u206f"
    "\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff9-\ufffb\U000e0000-\U000e007f\U000e0100-\U000e01ef]"
    # A combining mark on a digit (a keycap 1⃣, 0́) hides it from the patterns.
    r"|(?<=[0-9０-９])[\u0300-\u036f\u20d0-\u20ff]+"
)


def clean(text: str) -> str:
    """Invisible characters dropped, then NFKC (idempotent; NFKC brings no invisible character back)."""
    return _INVISIBLE.sub("", unicodedata.normalize("NFKC", _INVISIBLE.sub("", text or "")))


# ------------------------------------------------------------------ 2. shadow
_KANJI_DIGITS = "〇零一二三四五六七八九○◯"
_TO_DIGIT = str.maketrans(_KANJI_DIGITS, "0012345678900")
# Two or more in a row: 〇九〇, 一二三四. A single one is a word (一人, 三年, 九州) and stays.
_KANJI_NUMBER = re.compile(f"[{_KANJI_DIGITS}]{{2,}}")


# Then a single one among digit groups: 〇九九六二-三-四五六七, 〇六六六四.〇.二六二七 (once the runs are digits).
_DIGIT_GROUPS = re.compile(f"[0-9{_KANJI_DIGITS}]+(?:[-‐‑‒–—―−ー/_・の ().,]{{1,3}}[0-9{_KANJI_DIGITS}]+)+")


def _digits_in_groups(m: re.Match) -> str:
    text = m.group()
    return text.translate(_TO_DIGIT) if re.search("[0-9]", text) else text


def _shadow(text: str) -> str:
    return _DIGIT_GROUPS.sub(_digits_in_groups, _KANJI_NUMBER.sub(lambda m: m.group().translate(_TO_DIGIT), text))


# ------------------------------------------------------------------ 3. patterns
KANJI = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff々〆ヶ"
KATA = "\u30a1-\u30fa\u30fc-\u30ff"
HIRA = "\u3041-\u3096\u309d\u309e"
PARTICLE = "はがをにへとでもの 、。"
# A word character of Japanese text that is not a one-letter particle: where a Japanese e-mail local
# part, domain label or name begins and ends ("連絡は山田@例え.jp": the address is 山田@例え.jp).
JA = rf"(?:[{KANJI}{KATA}]|(?![{PARTICLE}])[{HIRA}])"
ASCII_LOCAL = r"[A-Za-z0-9._%+\-]"
# Hyphens as residents type them (NFKC has made ー－ｰ﹣ into ー or -), and the other separators of digit
# groups: slash, underscore, middle dot, の.
_SEP = r"\-‐‑‒–—―−ー/_・の"
# Between two digit groups: one separator (spaces around it allowed), one or two spaces, parentheses
# (03(1234)5678, (03) 1234-5678), or a dot or comma with no space (1.234 but not "3. 4", "2024, 2025").
_JOIN = rf"(?: *(?:[{_SEP}]|[()]{{1,2}}|\)[{_SEP}]|[{_SEP}]\() *|[.,]| {{1,2}})"
_SEQ = rf"(?<![0-9])(?P<seq>(?P<pre>\+ ?|〒 ?)?(?:\((?=[0-9]{{1,5}}\)))?[0-9]+(?:{_JOIN}[0-9]+)*)"

_AT = r" *@ *"
_AT_WORD = r" *(?:[(\[{<【] *(?:at|AT|At|アット|あっと) *[)\]}>】]|アットマーク|あっとまーく|アット|あっと) *"
_DOT = r"(?:\.| *[(\[{<【] *(?:dot|DOT|Dot|ドット|どっと) *[)\]}>】] *| +(?:dot|DOT) +| *(?:ドット|どっと) *)"
_LABEL_ASCII = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_LABEL_JA = rf"{JA}(?:[A-Za-z0-9-]|{JA}){{0,40}}"
_DOMAIN = rf"(?:(?:{_LABEL_ASCII}|{_LABEL_JA}){_DOT})*(?:{_LABEL_ASCII}|{_LABEL_JA})"
_EMAIL = (
    rf"(?P<email>(?:{ASCII_LOCAL}|{JA}){{1,64}}{_AT}{_DOMAIN}"  # 山田@例え.jp, a@localhost
    rf"|{ASCII_LOCAL}{{1,64}}(?:{_AT_WORD}{_DOMAIN}"  # taro(at)example.jp, taro アット example
    rf"| +(?:at|AT) +{_LABEL_ASCII}(?:{_DOT}{_LABEL_ASCII})+)"  # taro at example.jp (a dotted domain only)
    rf"|{ASCII_LOCAL}{{0,64}}{_AT}(?:{_DOMAIN})?)"  # whatever else has an @ sign
)

# A label and its value: 口座番号 1234567, 記号12 番号345, TEL:03-…, マイナンバーは…, ID AB-123456.
_LABEL = (
    r"(?P<label>(?:番号|記号|ナンバー|電話|携帯|ケータイ|TEL|Tel|tel|FAX|Fax|ファックス|連絡先|口座|普通|当座|支店|店番"
    r"|マイナンバー|個人番号|パスポート|旅券|保険証|被保険者証|受給者証|年金|免許証|ID|No\.?|NO\.?|№)"
    r"(?: *(?:は|が|:|=|#|№|No\.?) *| *))"
)
_LABELLED = rf"{_LABEL}(?P<lv>[A-Za-z]{{0,3}}[\- ]?[0-9](?:[0-9A-Za-z]|{_JOIN}[0-9])*)"
# Letters and digits: a passport (TK1234567), a member or customer number (ABC123456).
_LETTER_ID = r"(?P<letterid>(?<![A-Za-z0-9])[A-Za-z]{1,4}-?[0-9]{6,})"

# Dates: 昭和60年4月1日, S60.4.1, 1985/04/01, 19850401; numbers in digits or kanji (六十, 元).
_KD = f"[0-9{_KANJI_DIGITS}十元]"
_ERA = r"(?:明治|大正|昭和|平成|令和|[MTSHR]\.? ?)"
_DATE = (
    rf"(?:{_ERA}? ?{_KD}{{1,4}} ?年 ?{_KD}{{1,3}} ?月 ?{_KD}{{1,3}} ?日"
    rf"|{_ERA}{_KD}{{1,2}}[./\-]{_KD}{{1,2}}[./\-]{_KD}{{1,2}}"
    r"|(?:19|20)[0-9]{2} ?[/.\-] ?[0-9]{1,2} ?[/.\-] ?[0-9]{1,2}|(?:19|20)[0-9]{6})"
)
_BIRTH = (
    r"(?P<birth>(?P<bl>(?:生年月日|誕生日|生まれた日|出生日|(?i:date of birth|birthday|DOB))(?: *(?:は|:|=) *| *))"
    rf"(?P<bv>{_DATE}|{_KD}{{1,2}} ?月 ?{_KD}{{1,3}} ?日|[0-9]{{1,2}}/[0-9]{{1,2}}))"
    rf"|(?P<bv2>{_DATE})(?= ?(?:うまれ|産まれ|生(?:まれ)?(?![{KANJI}])))"
)

# Street addresses (the town before the number stays): 3丁目5番地2号, 5番2号, 123番地の4, 101号室,
# 1-2-3 after a town name, 11-1 after 町 or 丁目.
_AD = f"[0-9{_KANJI_DIGITS}十百]"
_DASH = r"[\-‐‑–—−ー]"
_BLOCKS = (
    rf"{_AD}+ ?丁目(?: ?{_AD}+ ?(?:番地|番|号室|号|の|{_DASH}))*(?: ?{_AD}+ ?(?:号(?:室)?)?)?"
    rf"|{_AD}+ ?番地(?: ?(?:の|{_DASH})? ?{_AD}+ ?(?:号(?:室)?)?)*"
    rf"|{_AD}+ ?番 ?{_AD}+ ?号(?:室)?|[0-9]+ ?号室"
)
_ADDRESS = (
    rf"(?P<address>{_BLOCKS}"
    rf"|(?<=[{KANJI}{KATA}])[0-9]{{1,5}}(?:{_DASH}[0-9]{{1,5}}){{2,3}}"
    rf"|(?<=[町村丁字目])[0-9]{{1,5}}{_DASH}[0-9]{{1,5}})"
    # After 住所, the first number is the street number, however it is written: 住所は日本大通1です.
    rf"|住所(?: *(?:は|:|=) *| *)[^0-9、。\n〒]{{0,20}}?(?P<addrnum>{_BLOCKS}|{_AD}+(?:{_DASH}{_AD}+)*"
    r"(?=$|[\s、。,.)）のにでまへ]|です))"
)

# Self-introduced names. A name: kanji (maybe a space, maybe a kana ending: 山田 さくら), katakana
# (ジョン・スミス) or hiragana; in the shadow a kanji numeral pair is digits (三四郎 → 34郎).
_NAME = (
    rf"(?:[{KANJI}][{KANJI}0-9]{{0,4}}(?: ?[{KANJI}0-9][{KANJI}0-9]{{0,4}})?(?: ?(?![はがをにでもの])(?:(?!です|ます|でし|でござ)[{HIRA}{KATA}]){{1,4}})?"
    rf"|[{KATA}]{{2,10}}(?:[・ ][{KATA}]{{1,10}})?"
    rf"|[{HIRA}]{{2,8}}(?: [{HIRA}]{{1,8}})?)"
)
_INTRO_END = r"(?:と申します|ともうします|と申す者|といいます|と言います|っていいます|って言います|と呼んで)"
_NAMES = (
    rf"(?P<n1l>(?:私|わたし|わたくし|僕|ぼく|俺|自分)(?:の名前)?は ?)(?P<n1>{_NAME})(?= ?(?:です(?!か)|でございます|{_INTRO_END}))"
    rf"|(?P<n2l>(?:お?名前|氏名|なまえ|フルネーム)(?: *(?:は|:|=) *| +))(?P<n2>{_NAME})(?= ?(?:です(?!か)|{_INTRO_END}|になります|[。、\n ]|$))"
    rf"|(?P<n3>{_NAME})(?= ?{_INTRO_END}(?!か))"
    r"|(?P<n4l>(?i:my name is|my name's|name *:|i am called|call me) +)"
    r"(?P<n4>(?!(?i:and|from|i|im|but|with|the|a|an|of|or|to|in|at|on|please|thanks?|living|who|here)\b)[A-Za-z][A-Za-z'\-]*"
    r"(?: (?!(?i:and|from|i|im|but|with|the|a|an|of|or|to|in|at|on|please|thanks?|living|who|here)\b)[A-Za-z][A-Za-z'\-]*){0,2})"
)

# What only looks like personal data and must stay as it is: machine stamps in our own log lines
# (20261201T213810.419578, 2026-12-01T21:40:34) and IPv4 addresses.
_KEEP = r"(?P<keep>[0-9]{8}T[0-9]{6}(?:\.[0-9]{1,6})?(?:-[0-9a-f]{12}-[0-9]+-[A-Za-z0-9_]+)?|[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]+)?)?" \
        r"|(?<![0-9.])[0-9]{1,3}(?:\.[0-9]{1,3}){3}(?![0-9.]))"
# A placeholder written before: NFKC turned ［］ into [], this turns it back (masking twice changes nothing).
_DONE = "(?P<done>\\[(?:" + "|".join(p[1:-1] for p in PLACEHOLDERS.values()) + ")\\])"

# The e-mail and name alternatives cost the most on long text (they try a word at every position), and
# neither can match without its sign: an @ or a spelled-out one, the words of a self-introduction. So
# the pass uses one of four compiled expressions, by two cheap searches; the alternatives keep their order.
_AT_HINT = re.compile(r"@|アット|あっと|(?i:\bat\b)")
_NAME_HINT = re.compile(r"私|わたし|わたくし|僕|ぼく|俺|自分|名前|氏名|なまえ|フルネーム|申|もうし|といい|と言い|ってい|って言|と呼|(?i:name|call me)")
_PATTERNS = {
    (email, names): re.compile("|".join(
        [_DONE, _KEEP, *([_EMAIL] if email else []), _BIRTH, *([_NAMES] if names else []), _LABELLED, _LETTER_ID, _ADDRESS, _SEQ]
    ))
    for email in (False, True) for names in (False, True)
}
PATTERN = _PATTERNS[True, True]

_UNIT = re.compile(r" ?(?:円|万|千|億|兆|人|名|件|歳|才|回|倍|%|点|個|枚|台|校|社|戸|世帯|年|か月|ヶ月|カ月|月|日|時|分|秒|km|m\b|kg)")
_DATE_SHAPE = re.compile(
    r"(?:19|20)[0-9]{2}([/.\-])(?:0?[1-9]|1[0-2])\1(?:0?[1-9]|[12][0-9]|3[01])"  # 2026/02/20
    r"|[0-9]{1,3}(?:,[0-9]{3})+(?:\.[0-9]+)?"  # 1,234,567
)
_YEARS = re.compile(r"(?:19|20)[0-9]{2} *[\-ー‐−–—/] *(?:19|20)?[0-9]{2}")  # 2024-2025年度, 2024/25年
# After 私は / 名前は, what is no name: a role or an age (私は学生です, 私は65歳です), a place or a question word.
_NOT_A_NAME_END = re.compile(
    r"(?:員|者|人|民|生|師|業|職|隊|長|士|官|側|様|市|県|区|都|府|語|系|籍|歳|才|目|住|婚|身|外|用|式|学|校)$"
)
_NOT_A_NAME = re.compile(
    r"^(?:何|なん|誰|だれ|大丈夫|本人|代理|担当|不明|未定|必要|必須|不要|任意|本名|旧姓|漢字|カタカナ|ひらがな|ローマ字|"
    r"変更|初めて|はじめて|対象|対象外|無職|主婦|主夫|同じ|別|そう|ここ|これ|それ|あれ|どこ|どれ|こちら|そちら|"
    r"ちがう|違う|英語|日本語|記入|必ず|省略|空欄|夫婦|家族|独身|年金生活)$"
)


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _number_kind(seq: str, pre: str | None, after: str, label: str | None = None) -> str | None:
    """What a run of digit groups is, or None when it stays (a date, an amount, a short figure).
    `label`: the kind its label names ("" for a label of no known kind, None for no label)."""
    digits = re.sub(r"[^0-9]", "", seq)
    n = len(digits)
    if label is not None:
        if n < 2 or _UNIT.match(after):
            return None
        kind = _number_kind(seq, None, after)  # a label of no known kind: 12 digits are still a マイナンバー
        return label or (kind if kind in ("my_number", "card") else "number")
    if pre and pre.startswith("+"):
        return "phone" if n >= 7 else None
    if pre:
        return "postal"
    if _DATE_SHAPE.fullmatch(seq) or n < 6 or _YEARS.fullmatch(seq) and after.lstrip().startswith("年"):
        return None
    if (digits == seq or "," in seq) and _UNIT.match(after) and not digits.startswith("0") and n <= 11:
        return None  # 1000000円, 100000人; never 09012345678円
    if n == 12:
        return "my_number"
    if 13 <= n <= 19:
        return "card" if _luhn(digits) else "number"
    if digits.startswith("0") or (n == 8 and re.fullmatch(r"[0-9]{4}\D+[0-9]{4}", seq)):
        return "phone"
    if n == 7 and re.fullmatch(r"[0-9]{3}[\-‐‑–—−ー][0-9]{4}", seq):
        return "postal"
    return "number"


def _label_kind(label: str, before: str) -> str:
    """The kind a label names (口座番号 → account), from its own words, else from the words just before it."""
    for text in (label, before):
        for words, kind in _LABEL_KINDS:
            if words.search(text):
                return kind
    return ""


_LABEL_KINDS = [
    (re.compile(r"マイナンバー|個人番号"), "my_number"),
    (re.compile(r"口座|普通|当座|支店|店番"), "account"),
    (re.compile(r"カード|クレジット"), "card"),
    (re.compile(r"郵便"), "postal"),
    (re.compile(r"電話|携帯|ケータイ|TEL|Tel|tel|FAX|Fax|ファックス|連絡先"), "phone"),
]


def _classify(m: re.Match, shadow: str) -> tuple[str, int, int] | None:
    """(kind, start, end) of what to replace in this match, or None to keep it."""
    group = m.lastgroup
    if group in ("done", "keep"):
        kind = next((k for k, p in PLACEHOLDERS.items() if p[1:-1] == m.group()[1:-1]), None) if group == "done" else None
        return (kind, m.start(), m.end()) if kind else None
    if group == "email":
        return "email", m.start(), m.end()
    if group in ("birth", "bv2"):
        value = "bv" if group == "birth" else "bv2"
        return "birth", m.start(value), m.end(value)
    if group in ("n1", "n2", "n3", "n4"):
        name = m.group(group).strip()
        if group != "n4" and _NOT_A_NAME.search(name) or group in ("n1", "n2") and _NOT_A_NAME_END.search(name):
            return None
        return "name", m.start(group), m.start(group) + len(m.group(group).rstrip())
    if group == "lv":
        # The label's own words and the few characters before it say what the number is: 口座番号, 電話番号.
        if m.group("label")[0] in "Nn№" and len(re.sub(r"[^0-9]", "", m.group("lv"))) < 4:
            return None  # Typhoon No. 15, No.1: a count, not an identifier
        label = _label_kind(m.group("label"), shadow[max(0, m.start("label") - 8) : m.start("label")])
        kind = _number_kind(m.group("lv"), None, shadow[m.end() : m.end() + 3], label=label)
        return (kind, m.start("lv"), m.end()) if kind else None
    if group == "letterid":
        return "number", m.start(), m.end()
    if group == "address":
        if re.fullmatch(r"[0-9\-‐‑–—−ー]+", m.group()) and len(re.sub(r"[^0-9]", "", m.group())) >= 10:
            kind = _number_kind(m.group(), None, shadow[m.end() : m.end() + 3])  # 4111-1111-…: a card after a word
            return (kind, m.start(), m.end()) if kind else None
        return "address", m.start(), m.end()
    if group == "addrnum":
        return "address", m.start(group), m.end(group)
    if group == "seq":
        kind = _number_kind(m.group("seq"), m.group("pre"), shadow[m.end() : m.end() + 3])
        return (kind, m.start(), m.end()) if kind else None
    return None


def mask_personal_data(text: str) -> str:
    """The text cleaned (see `clean`) with every piece of personal data replaced by a typed placeholder."""
    text = clean(text)
    shadow = _shadow(text)
    out: list[str] = []
    pos = 0
    pattern = _PATTERNS[_AT_HINT.search(text) is not None, _NAME_HINT.search(text) is not None]
    for m in pattern.finditer(shadow):
        found = _classify(m, shadow)
        if found is None:
            continue
        kind, start, end = found
        out.append(text[pos:start])
        out.append(PLACEHOLDERS[kind])
        pos = end
    if not out:
        return text
    out.append(text[pos:])
    return "".join(out)


# ------------------------------------------------------------------ logs
def path_only(target: str) -> str:
    """A request target without its query string or fragment: `/?q=…` → `/`."""
    return urlsplit(target).path or "/"


def mask_log_record(record: logging.LogRecord) -> None:
    """Mask a log record in place: its message with its arguments, its traceback and its stack.

    Numbers given as arguments (a process id, a count, a port) stay as they are: they come from
    the code, not from a resident. uvicorn's access records keep their five arguments (its
    formatter needs them), with the query string cut off the path."""
    args = record.args
    if record.name == "uvicorn.access" and isinstance(args, tuple) and len(args) == 5:
        client, method, target, version, status = args
        record.args = (client, method, mask_personal_data(path_only(str(target))), version, status)
        return

    def safe(value):
        return value if isinstance(value, (int, float, type(None))) else mask_personal_data(str(value))

    template = mask_personal_data(str(record.msg))  # a message formatted before logging (an f-string)
    try:
        if isinstance(args, dict):
            message = template % {key: safe(value) for key, value in args.items()}
        elif args:
            message = template % tuple(safe(value) for value in args)
        else:
            message = template
    except (TypeError, ValueError, KeyError):  # a bad format string: keep the words, masked
        message = f"{template} {safe(args)}"
    record.msg, record.args = message, None
    if record.exc_info and not record.exc_text:
        record.exc_text = mask_personal_data(logging.Formatter().formatException(record.exc_info))
    if record.stack_info:
        record.stack_info = mask_personal_data(record.stack_info)


def install_log_masking() -> None:
    """Mask every log record this process creates, whichever logger it comes from (ours, uvicorn's, a
    library's) and wherever it goes. A record factory rather than a filter: a filter on a logger does not
    see its children's records, and one on a handler misses the handlers an operator adds."""
    current = logging.getLogRecordFactory()
    if getattr(current, "masks_personal_data", False):
        return

    def factory(*args, **kwargs):
        record = current(*args, **kwargs)
        mask_log_record(record)
        return record

    factory.masks_personal_data = True
    logging.setLogRecordFactory(factory)
