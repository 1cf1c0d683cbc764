"""Place names → prefecture → the 行政相談センター きくみみ office that serves it.

Built from the knowledge base, not typed in: the offices' addresses give their
cities (函館市 → きくみみ函館), the documents' "久慈市（岩手県）" give more cities,
and the 47 prefectures are known by their Japanese and romanised names.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

# (prefecture, short name, romanised)
PREFECTURES = [
    ("北海道", "北海道", "hokkaido"), ("青森県", "青森", "aomori"), ("岩手県", "岩手", "iwate"),
    ("宮城県", "宮城", "miyagi"), ("秋田県", "秋田", "akita"), ("山形県", "山形", "yamagata"),
    ("福島県", "福島", "fukushima"), ("茨城県", "茨城", "ibaraki"), ("栃木県", "栃木", "tochigi"),
    ("群馬県", "群馬", "gunma"), ("埼玉県", "埼玉", "saitama"), ("千葉県", "千葉", "chiba"),
    ("東京都", "東京", "tokyo"), ("神奈川県", "神奈川", "kanagawa"), ("新潟県", "新潟", "niigata"),
    ("富山県", "富山", "toyama"), ("石川県", "石川", "ishikawa"), ("福井県", "福井", "fukui"),
    ("山梨県", "山梨", "yamanashi"), ("長野県", "長野", "nagano"), ("岐阜県", "岐阜", "gifu"),
    ("静岡県", "静岡", "shizuoka"), ("愛知県", "愛知", "aichi"), ("三重県", "三重", "mie"),
    ("滋賀県", "滋賀", "shiga"), ("京都府", "京都", "kyoto"), ("大阪府", "大阪", "osaka"),
    ("兵庫県", "兵庫", "hyogo"), ("奈良県", "奈良", "nara"), ("和歌山県", "和歌山", "wakayama"),
    ("鳥取県", "鳥取", "tottori"), ("島根県", "島根", "shimane"), ("岡山県", "岡山", "okayama"),
    ("広島県", "広島", "hiroshima"), ("山口県", "山口", "yamaguchi"), ("徳島県", "徳島", "tokushima"),
    ("香川県", "香川", "kagawa"), ("愛媛県", "愛媛", "ehime"), ("高知県", "高知", "kochi"),
    ("福岡県", "福岡", "fukuoka"), ("佐賀県", "佐賀", "saga"), ("長崎県", "長崎", "nagasaki"),
    ("熊本県", "熊本", "kumamoto"), ("大分県", "大分", "oita"), ("宮崎県", "宮崎", "miyazaki"),
    ("鹿児島県", "鹿児島", "kagoshima"), ("沖縄県", "沖縄", "okinawa"),
]
# Cities with an office whose romanised name is not their prefecture's: an English question
# names the city it lives in ("I live in Sapporo"). Looked up only when the city is known.
CITY_ROMAN = {
    "札幌": "sapporo", "函館": "hakodate", "旭川": "asahikawa", "釧路": "kushiro", "仙台": "sendai",
    "盛岡": "morioka", "水戸": "mito", "宇都宮": "utsunomiya", "前橋": "maebashi", "新宿": "shinjuku",
    "横浜": "yokohama", "金沢": "kanazawa", "甲府": "kofu", "名古屋": "nagoya", "大津": "otsu", "神戸": "kobe",
    "松江": "matsue", "高松": "takamatsu", "松山": "matsuyama", "博多": "hakata", "那覇": "naha",
}
_CITY_IN_DOC = re.compile(r"([^\s（()、・:：]{1,6}?[市町村])[（(]([^）)]{2,4}?[都道府県])[）)]")
_CITY_OF_ADDRESS = re.compile(r"^([^\s]{1,6}?[市区])")


@dataclass(frozen=True)
class Place:
    name: str  # as found in the text
    prefecture: str
    office_id: str | None  # the きくみみ office serving it


class PlaceIndex:
    def __init__(self, kb):
        offices = [c for c in kb.contacts.values() if c.kind == "kikumimi" and c.prefecture]
        self.offices = {c.id: c for c in offices}
        by_prefecture: dict[str, str] = {}
        city_office: dict[str, str] = {}
        for office in offices:
            # The office named after its prefecture serves it (きくみみ北海道 over きくみみ函館).
            short = office.prefecture.rstrip("都府県") if office.prefecture != "北海道" else "北海道"
            if office.name.endswith(short) or office.prefecture not in by_prefecture:
                by_prefecture[office.prefecture] = office.id
            match = _CITY_OF_ADDRESS.match(office.address or "")
            if match:
                city_office[match.group(1)] = office.id
        # An office in a city that is not its prefecture's seat serves that city (函館, 旭川, 釧路).
        names: dict[str, tuple[str, str | None]] = {}
        for prefecture, short, roman in PREFECTURES:
            office = by_prefecture.get(prefecture)
            for name in {prefecture, short, roman}:
                names[name] = (prefecture, office)
        for doc in kb.sources.values():
            for city, prefecture in _CITY_IN_DOC.findall(unicodedata.normalize("NFKC", doc.text)):
                if prefecture in by_prefecture:
                    names.setdefault(city, (prefecture, by_prefecture[prefecture]))
                    names.setdefault(city[:-1], (prefecture, by_prefecture[prefecture])) if len(city) > 2 else None
        for city, office_id in city_office.items():
            prefecture = self.offices[office_id].prefecture
            names[city] = (prefecture, office_id)
            if len(city) > 2:
                names[city[:-1]] = (prefecture, office_id)  # 函館市 → 函館
        for city, roman in CITY_ROMAN.items():
            known = names.get(city) or names.get(city + "市") or names.get(city + "区")
            if known:
                names.setdefault(roman, known)
        self.names = names
        self.by_prefecture = by_prefecture
        ascii_names = sorted((n for n in names if n.isascii()), key=len, reverse=True)
        kanji_names = sorted((n for n in names if not n.isascii()), key=len, reverse=True)
        self._ascii = re.compile(r"\b(" + "|".join(map(re.escape, ascii_names)) + r")\b", re.I) if ascii_names else None
        self._kanji = re.compile("|".join(map(re.escape, kanji_names))) if kanji_names else None

    def find(self, text: str) -> Place | None:
        """The first place named in `text`, longest name first."""
        text = unicodedata.normalize("NFKC", text)
        for pattern in (self._kanji, self._ascii):
            if pattern is None:
                continue
            match = pattern.search(text)
            if match:
                name = match.group(0)
                prefecture, office = self.names.get(name) or self.names[name.lower()]
                return Place(name, prefecture, office)
        return None

    def office(self, place: Place | None):
        return self.offices.get(place.office_id) if place and place.office_id else None
