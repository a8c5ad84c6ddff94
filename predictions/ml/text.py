"""Clinical free text in English and Chinese: language, tokens, negation and uncertainty.

One analysis serves the featuriser, the neural text models, the explanations and the clinical
rules, so "no chest pain" means the same thing everywhere:

* **Language** is detected per text from its script (share of Han characters), never configured.
  A text mixing both is tokenised run by run: Latin runs by a word pattern, Han runs by ``jieba``
  (a dedicated tokenizer instance that knows the lexicon terms below, so "意识障碍" and "否认"
  stay whole words).
* **Negation and uncertainty** follow NegEx (Chapman et al., 2001): a trigger ("no", "denies",
  "without", "negative for", "无", "否认", "未见", "没有", "不伴" ...) opens a scope that runs
  forward over at most :data:`SCOPE_TOKENS` words and stops at a clause break or a termination
  word ("but", "however", "但", "伴" ...); post-triggers ("absent", "阴性") look backwards.
  Pseudo-triggers ("no change", "无明显诱因") are consumed first so they open no scope. Tokens in
  a scope carry a polarity, ``NEG`` or ``UNC`` (possible, suspected, 可能, 疑似, 待排 ...); the
  featuriser turns them into distinct features ("NEG_chest_pain").
* **Concept lexicons** (:data:`LEXICON`) name the findings rules look for, in both languages;
  :func:`find_concept` returns each mention with its polarity, so a negated finding never fires.

Everything here is deterministic and pure (no Django); jieba's dictionary loads lazily, once.
"""

from __future__ import annotations

import functools
import logging
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

Language = Literal["en", "zh"]
Polarity = Literal["", "NEG", "UNC"]

# A text whose letters are at least this share Han characters is Chinese.
ZH_SHARE = 0.3
# NegEx's window: a trigger's scope covers at most this many following words.
SCOPE_TOKENS = 6
# Post-triggers ("chest pain absent") reach back at most this many words.
POST_SCOPE_TOKENS = 4

_HAN = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_HAN_RE = re.compile(f"[{_HAN}]")
_LATIN_RE = re.compile(r"[A-Za-z]")
# Han runs, Latin words (with inner ' - / .), numbers, and the punctuation that breaks clauses.
_PIECE_RE = re.compile(
    rf"(?P<han>[{_HAN}]+)"
    r"|(?P<word>[A-Za-z]+(?:['/-][A-Za-z]+)*)"
    r"|(?P<num>\d+(?:\.\d+)?)"
    r"|(?P<brk>[.;!?\n。；！？，,:：()（）\[\]【】])"
    r"|(?P<cont>[、/&+])"
)
# A clause break that does not end a negation scope in English: lists run on over commas
# ("denies fever, chills or cough"); a Chinese comma does end it ("无发热，咳嗽三天").
_EN_SOFT_BREAKS = frozenset({","})

# -- trigger lists (lower case; multi-word English triggers are word tuples) --------------------
_EN_PRE_NEG = (
    "no",
    "not",
    "nil",
    "denies",
    "denied",
    "deny",
    "denying",
    "without",
    "negative for",
    "free of",
    "absence of",
    "no evidence of",
    "no signs of",
    "no sign of",
    "no history of",
    "no h/o",
    "never",
    "ruled out",
    "rules out",
    "resolved",
    "nor",
)
_EN_POST_NEG = ("absent", "negative", "ruled out", "denied", "none", "resolved", "not present")
_EN_PRE_UNC = (
    "possible",
    "possibly",
    "probable",
    "probably",
    "suspected",
    "suspect",
    "suspicious for",
    "query",
    "questionable",
    "likely",
    "may",
    "might",
    "cannot rule out",
    "cannot exclude",
    "rule out",
    "r/o",
    "unclear if",
    "?",
)
_EN_PSEUDO = (
    "no change",
    "no increase",
    "not only",
    "no further",
    "not certain if",
    "gram negative",
    "without difficulty",
    "not necessarily",
)
_EN_TERMINATORS = frozenset(
    {
        "but",
        "however",
        "although",
        "though",
        "except",
        "apart",
        "aside",
        "yet",
        "which",
        "who",
        "presents",
        "presenting",
        "presented",
        "reports",
        "reported",
        "reporting",
        "complains",
        "complaining",
        "has",
        "have",
        "had",
        "now",
        "positive",
        "developed",
        "started",
        "noted",
    }
)
_ZH_PRE_NEG = (
    "无",
    "否认",
    "未见",
    "未诉",
    "未",
    "没有",
    "没",
    "不伴",
    "不伴有",
    "未伴",
    "未伴有",
    "未闻及",
    "未触及",
    "未及",
    "未出现",
    "无明显",
    "排除",
    "已排除",
    "非",
    "不",
)
_ZH_POST_NEG = ("阴性", "消失", "已排除", "（-）", "(-)", "未见", "未见异常", "已缓解")
_ZH_PRE_UNC = ("可能", "疑似", "可疑", "考虑", "待排", "不除外", "不排除", "似", "疑", "？", "?")
_ZH_PSEUDO = ("无明显诱因", "无诱因", "无明显原因", "不适", "不规则", "不明原因", "原因不明")
_ZH_TERMINATORS = frozenset(
    {"但", "但是", "然而", "伴", "伴有", "有", "出现", "诉", "并", "自觉", "感", "可见", "现"}
)


@dataclass(frozen=True)
class Token:
    """One word of a text: its surface form, normalised form, place and polarity."""

    text: str
    norm: str
    start: int
    end: int
    language: Language
    polarity: Polarity = ""
    kind: str = "word"  # word | trigger | pseudo | break | soft


@dataclass(frozen=True)
class Analysis:
    """A text's language and its tokens (clause breaks kept as ``kind == "break"`` tokens)."""

    text: str
    language: Language
    tokens: tuple[Token, ...]

    def words(self) -> list[Token]:
        """The tokens that carry meaning (triggers and clause breaks excluded)."""
        return [t for t in self.tokens if t.kind == "word"]

    def clauses(self) -> list[list[Token]]:
        """Words grouped into clauses (n-grams never cross a clause break or a polarity change)."""
        out: list[list[Token]] = [[]]
        for token in self.tokens:
            if token.kind in ("break", "soft", "trigger", "pseudo"):
                if out[-1]:
                    out.append([])
                continue
            if out[-1] and out[-1][-1].polarity != token.polarity:
                out.append([])
            out[-1].append(token)
        return [c for c in out if c]


def detect_language(text: str) -> Language:
    """``"zh"`` when Han characters make up at least :data:`ZH_SHARE` of the letters, else ``"en"``."""
    han = len(_HAN_RE.findall(text))
    if not han:
        return "en"
    latin = len(_LATIN_RE.findall(text))
    return "zh" if han / (han + latin) >= ZH_SHARE else "en"


# -- concept lexicons: what the rules (and readers of the report) look for --------------------
# Each concept: English regular expressions (matched case-insensitively on word boundaries) and
# Chinese phrases (matched as substrings). Adding a language is adding a key.
LEXICON: dict[str, dict[str, tuple[str, ...]]] = {
    "confusion": {
        "en": (
            r"confus\w*",
            r"disorient\w*",
            r"drows\w*",
            r"altered (?:mental|mentation|level of consciousness|consciousness)\w*",
            r"obtunded",
            r"delirious|delirium",
            r"gcs\s*(?:1[0-4]|[3-9])",
            r"not orientated|not oriented",
        ),
        "zh": (
            "意识模糊",
            "意识障碍",
            "意识不清",
            "神志不清",
            "神志模糊",
            "神志恍惚",
            "嗜睡",
            "谵妄",
            "定向力障碍",
            "昏睡",
            "反应迟钝",
            "胡言乱语",
        ),
    },
    "critical_chest_pain": {
        "en": (
            r"crushing chest pain",
            r"chest pain radiating to (?:the )?(?:left )?(?:arm|jaw|neck|shoulder)",
            r"tearing (?:chest|back) pain",
        ),
        "zh": ("压榨样胸痛", "压榨性胸痛", "撕裂样胸痛", "胸痛放射至左", "胸痛向左肩", "濒死感"),
    },
    "thunderclap_headache": {
        "en": (r"worst headache of (?:my|his|her|their) life", r"thunderclap headache"),
        "zh": ("雷击样头痛", "一生中最剧烈的头痛", "爆裂样头痛"),
    },
    "stroke_signs": {
        "en": (
            r"facial droop",
            r"slurred speech",
            r"(?:one-sided|unilateral|left-sided|right-sided) weakness",
            r"hemiparesis|hemiplegia",
        ),
        "zh": ("口角歪斜", "言语不清", "口齿不清", "一侧肢体无力", "偏瘫", "半身不遂"),
    },
    "gi_bleeding": {
        "en": (r"vomit\w* blood", r"ha?ematemesis", r"mela?ena", r"black,? tarry stools?"),
        "zh": ("呕血", "黑便", "柏油样便"),
    },
    "anaphylaxis": {
        "en": (r"anaphyla\w*", r"throat (?:swelling|tightness)", r"swollen (?:tongue|lips)"),
        "zh": ("过敏性休克", "喉头水肿", "喉头发紧", "舌头肿胀"),
    },
    "suicidality": {
        "en": (r"suicid\w*", r"wants? to die", r"self[- ]harm"),
        "zh": ("自杀", "轻生", "不想活", "自残"),
    },
    "loss_of_consciousness": {
        "en": (r"loss of consciousness", r"unresponsive", r"syncop\w*", r"passed out"),
        "zh": ("意识丧失", "晕厥", "昏迷", "不省人事"),
    },
    "seizure": {
        "en": (r"seizures?", r"convulsions?", r"fitting"),
        "zh": ("抽搐", "癫痫发作", "惊厥"),
    },
    "meningism": {
        "en": (r"neck stiffness", r"stiff neck", r"meningism\w*"),
        "zh": ("颈项强直", "颈强直", "脖子僵硬"),
    },
}

# Allergy substances: a class name matches its members and its Chinese names. Keys are the
# English names :data:`predictions.rules.TREATMENT_CONFLICTS` uses.
SUBSTANCES: dict[str, dict[str, tuple[str, ...]]] = {
    "penicillin": {"en": (r"penicillin\w*",), "zh": ("青霉素", "盘尼西林")},
    "amoxicillin": {"en": (r"amoxicillin\w*", r"amoxil"), "zh": ("阿莫西林",)},
    "beta-lactam": {
        "en": (r"beta[- ]?lactams?", r"β[- ]?lactams?"),
        "zh": ("β-内酰胺", "β内酰胺", "内酰胺"),
    },
    "piperacillin": {"en": (r"piperacillin\w*", r"tazocin"), "zh": ("哌拉西林",)},
    "sulfonamide": {
        "en": (r"sulfonamides?", r"sulphonamides?", r"sulfa\b", r"sulpha\b", r"sulfa drugs?"),
        "zh": ("磺胺",),
    },
    "trimethoprim": {
        "en": (r"trimethoprim\w*", r"bactrim", r"co-trimoxazole"),
        "zh": ("甲氧苄啶", "复方新诺明"),
    },
    "aspirin": {"en": (r"aspirin", r"acetylsalicylic acid"), "zh": ("阿司匹林", "乙酰水杨酸")},
    "nsaid": {
        "en": (r"nsaids?", r"non-?steroidal anti-?inflammator\w*"),
        "zh": ("非甾体", "非甾体抗炎药", "非甾体类"),
    },
    "ibuprofen": {"en": (r"ibuprofen", r"advil", r"nurofen"), "zh": ("布洛芬",)},
    "cephalosporin": {"en": (r"cephalosporins?", r"cef\w+", r"ceph\w+"), "zh": ("头孢",)},
    "metronidazole": {"en": (r"metronidazole", r"flagyl"), "zh": ("甲硝唑",)},
}

_ALL_TERMS_ZH = tuple(
    sorted(
        {p for table in (LEXICON, SUBSTANCES) for c in table.values() for p in c.get("zh", ())}
        | set(_ZH_PRE_NEG + _ZH_POST_NEG + _ZH_PRE_UNC + _ZH_PSEUDO)
        | set(_ZH_TERMINATORS)
    )
)


@functools.cache
def _jieba() -> Any:
    """A private jieba tokenizer that keeps the lexicon's terms and triggers whole (loaded once)."""
    import jieba

    logging.getLogger("jieba").setLevel(logging.WARNING)  # no "Building prefix dict" chatter
    tokenizer = jieba.Tokenizer()
    tokenizer.initialize()
    for term in _ALL_TERMS_ZH:
        if _HAN_RE.search(term):
            tokenizer.add_word(term, freq=200_000)
    for term in CLINICAL_WORDS_ZH:
        tokenizer.add_word(term, freq=50_000)
    return tokenizer


_jieba_lock = threading.Lock()

# Common clinical words jieba's general dictionary splits or glues wrongly; kept whole.
CLINICAL_WORDS_ZH = (
    "胸痛",
    "胸闷",
    "气促",
    "气短",
    "气喘",
    "咳嗽",
    "咳痰",
    "黄痰",
    "发热",
    "寒战",
    "头痛",
    "头晕",
    "恶心",
    "呕吐",
    "腹痛",
    "腹泻",
    "尿频",
    "尿急",
    "尿痛",
    "腰痛",
    "乏力",
    "心悸",
    "出汗",
    "大汗",
    "咽痛",
    "鼻塞",
    "流涕",
    "喷嚏",
    "畏光",
    "水肿",
    "下肢水肿",
    "呼吸困难",
    "端坐呼吸",
    "夜间阵发性呼吸困难",
    "反酸",
    "烧心",
    "多饮",
    "多尿",
    "消瘦",
    "肌肉酸痛",
    "全身酸痛",
    "右下腹痛",
    "转移性右下腹痛",
    "麦氏点压痛",
    "血尿",
    "肉眼血尿",
    "喘息",
    "哮鸣音",
    "湿啰音",
    "干啰音",
    "面色苍白",
    "头重脚轻",
    "怕热",
    "手抖",
    "突眼",
    "小腿肿痛",
    "单侧下肢肿胀",
    "颈部僵硬",
    "视物模糊",
)


def _zh_pieces(run: str, offset: int) -> list[tuple[str, int, int]]:
    tokenizer = _jieba()
    with _jieba_lock:  # jieba's tokenizer is not documented as thread-safe
        return [(w, offset + s, offset + e) for w, s, e in tokenizer.tokenize(run, HMM=True)]


def _raw_tokens(text: str) -> list[Token]:
    tokens: list[Token] = []
    for match in _PIECE_RE.finditer(text):
        kind = match.lastgroup
        start = match.start()
        if kind == "han":
            for word, s, e in _zh_pieces(match.group(), start):
                tokens.append(Token(word, word, s, e, "zh"))
        elif kind == "word" or kind == "num":
            word = match.group()
            tokens.append(Token(word, word.lower(), start, match.end(), "en"))
        elif kind == "brk":
            mark = match.group()
            soft = mark in _EN_SOFT_BREAKS
            tokens.append(
                Token(mark, mark, start, match.end(), "en", kind="soft" if soft else "break")
            )
        else:
            mark = match.group()
            tokens.append(Token(mark, mark, start, match.end(), "zh", kind="soft"))
    # "?" is an uncertainty cue in notes ("? pneumonia"); it is matched as a separate piece.
    for match in re.finditer(r"[?？](?=\s*[A-Za-z\u4e00-\u9fff])", text):
        tokens.append(Token("?", "?", match.start(), match.end(), "en", kind="word"))
    tokens.sort(key=lambda t: (t.start, t.end))
    return tokens


def _phrases(items: Iterable[str]) -> list[tuple[str, ...]]:
    """Trigger phrases as token tuples, longest first (so "no history of" beats "no")."""
    out = {tuple(p.split()) if " " in p else (p,) for p in items}
    return sorted(out, key=len, reverse=True)


_EN_PRE_NEG_T = _phrases(_EN_PRE_NEG)
_EN_POST_NEG_T = _phrases(_EN_POST_NEG)
_EN_PRE_UNC_T = _phrases(_EN_PRE_UNC)
_EN_PSEUDO_T = _phrases(_EN_PSEUDO)
_FIRST_WORDS = {
    id(p): frozenset(phrase[0] for phrase in p)
    for p in (_EN_PRE_NEG_T, _EN_POST_NEG_T, _EN_PRE_UNC_T, _EN_PSEUDO_T)
}
_ZH_PRE_NEG_S = frozenset(_ZH_PRE_NEG)
_ZH_POST_NEG_S = frozenset(_ZH_POST_NEG)
_ZH_PRE_UNC_S = frozenset(_ZH_PRE_UNC)
_ZH_PSEUDO_S = frozenset(_ZH_PSEUDO)


def _match_at(norms: list[str], i: int, phrases: list[tuple[str, ...]]) -> int:
    """Length (in tokens) of the longest phrase starting at ``norms[i]``, 0 if none."""
    if norms[i] not in _FIRST_WORDS[id(phrases)]:  # most words start no phrase: one look-up
        return 0
    for phrase in phrases:
        if tuple(norms[i : i + len(phrase)]) == phrase:
            return len(phrase)
    return 0


def _classify(tokens: list[Token]) -> list[tuple[str, str, int]]:
    """Per token: (role, polarity, length) where role is pre/post/pseudo/'' (trigger spans)."""
    norms = [t.norm for t in tokens]
    roles: list[tuple[str, str, int]] = [("", "", 0)] * len(tokens)
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token.kind != "word":
            i += 1
            continue
        if token.language == "en":
            n = _match_at(norms, i, _EN_PSEUDO_T)
            if n:
                roles[i] = ("pseudo", "", n)
                i += n
                continue
            n = _match_at(norms, i, _EN_PRE_UNC_T)
            if n:
                roles[i] = ("pre", "UNC", n)
                i += n
                continue
            n = _match_at(norms, i, _EN_PRE_NEG_T)
            if n:
                # "ruled out"/"resolved"/"denied" after a finding are post-triggers.
                post = _match_at(norms, i, _EN_POST_NEG_T)
                preceded = i > 0 and tokens[i - 1].kind == "word"
                if post and preceded and norms[i] in ("ruled", "resolved", "denied"):
                    roles[i] = ("post", "NEG", post)
                else:
                    roles[i] = ("pre", "NEG", n)
                i += n
                continue
            n = _match_at(norms, i, _EN_POST_NEG_T)
            if n:
                roles[i] = ("post", "NEG", n)
                i += n
                continue
        else:
            word = token.norm
            if word in _ZH_PSEUDO_S:
                roles[i] = ("pseudo", "", 1)
            elif word in _ZH_PRE_UNC_S:
                roles[i] = ("pre", "UNC", 1)
            elif word in _ZH_POST_NEG_S and i > 0 and tokens[i - 1].kind == "word":
                roles[i] = ("post", "NEG", 1)
            elif word in _ZH_PRE_NEG_S:
                roles[i] = ("pre", "NEG", 1)
        i += 1
    return roles


def _scoped(tokens: list[Token]) -> list[Token]:
    """Tokens with polarity set by the NegEx scopes and triggers marked."""
    roles = _classify(tokens)
    polarity: list[str] = [""] * len(tokens)
    kinds = [t.kind for t in tokens]
    i = 0
    while i < len(tokens):
        role, pol, length = roles[i]
        if not role:
            i += 1
            continue
        for j in range(i, i + length):
            kinds[j] = "pseudo" if role == "pseudo" else "trigger"
        if role == "pre":
            counted = 0
            j = i + length
            while j < len(tokens) and counted < SCOPE_TOKENS:
                token = tokens[j]
                if token.kind == "break":
                    break
                if token.kind == "soft":
                    if token.norm == "，" or (token.norm == "," and token.language == "zh"):
                        break
                    j += 1
                    continue
                if roles[j][0]:  # another trigger starts its own scope
                    break
                terminators = _EN_TERMINATORS if token.language == "en" else _ZH_TERMINATORS
                if token.norm in terminators:
                    break
                polarity[j] = pol
                counted += 1
                j += 1
        elif role == "post":
            counted = 0
            j = i - 1
            while j >= 0 and counted < POST_SCOPE_TOKENS:
                token = tokens[j]
                if token.kind in ("break",) or (token.kind == "soft" and token.norm != "、"):
                    break
                if roles[j][0] or token.kind != "word":
                    break
                polarity[j] = pol
                counted += 1
                j -= 1
        i += max(1, length)
    return [
        Token(t.text, t.norm, t.start, t.end, t.language, polarity[k], kinds[k])  # type: ignore[arg-type]
        for k, t in enumerate(tokens)
    ]


@functools.lru_cache(maxsize=50_000)
def analyse(text: str) -> Analysis:
    """Language, tokens and negation/uncertainty scopes of one text (cached per text)."""
    text = text or ""
    tokens = _scoped(_raw_tokens(text))
    return Analysis(text, detect_language(text), tuple(tokens))


# -- concept matching for the rules ----------------------------------------------------------


@dataclass(frozen=True)
class Mention:
    """A concept found in a text: where, as written, and whether it is negated or uncertain."""

    concept: str
    text: str
    start: int
    end: int
    language: Language
    polarity: Polarity


@functools.cache
def _concept_patterns(table_id: int, concept: str) -> tuple[re.Pattern[str], ...]:
    table = LEXICON if table_id == 0 else SUBSTANCES
    entry = table[concept]
    patterns = []
    if entry.get("en"):
        patterns.append(re.compile(r"\b(?:" + "|".join(entry["en"]) + r")\b", re.IGNORECASE))
    if entry.get("zh"):
        zh = sorted(entry["zh"], key=len, reverse=True)
        patterns.append(re.compile("|".join(re.escape(p) for p in zh)))
    return tuple(patterns)


def _polarity_at(analysis: Analysis, start: int, end: int) -> Polarity:
    """The polarity of the words a mention overlaps (negated wins over uncertain)."""
    found: set[str] = set()
    for token in analysis.tokens:
        if token.end <= start or token.start >= end:
            continue
        if token.kind == "word":
            found.add(token.polarity)
    if "NEG" in found:
        return "NEG"
    if "UNC" in found:
        return "UNC"
    return ""


def find_concept(
    text: str, concept: str, *, table: Literal["findings", "substances"] = "findings"
) -> list[Mention]:
    """Every mention of ``concept`` in ``text`` (either language) with its polarity."""
    text = text or ""
    if not text:
        return []
    table_id = 0 if table == "findings" else 1
    source = LEXICON if table_id == 0 else SUBSTANCES
    if concept not in source:
        raise KeyError(f"unknown concept {concept!r}")
    analysis = analyse(text)
    mentions = []
    for pattern in _concept_patterns(table_id, concept):
        for match in pattern.finditer(text):
            language: Language = "zh" if _HAN_RE.search(match.group()) else "en"
            mentions.append(
                Mention(
                    concept,
                    match.group(),
                    match.start(),
                    match.end(),
                    language,
                    _polarity_at(analysis, match.start(), match.end()),
                )
            )
    return sorted(mentions, key=lambda m: m.start)


def affirmed(text: str, concept: str, *, include_uncertain: bool = True) -> list[Mention]:
    """Mentions of ``concept`` that are not negated (uncertain ones too unless excluded)."""
    allowed = {"", "UNC"} if include_uncertain else {""}
    return [m for m in find_concept(text, concept) if m.polarity in allowed]


def substances_in(text: str) -> dict[str, list[Mention]]:
    """Allergy substances named in ``text`` (not negated), by their English key."""
    found: dict[str, list[Mention]] = {}
    for key in SUBSTANCES:
        mentions = [m for m in find_concept(text, key, table="substances") if m.polarity != "NEG"]
        if mentions:
            found[key] = mentions
    return found


# -- features for the featuriser ---------------------------------------------------------------

_PREFIX = {"": "", "NEG": "NEG_", "UNC": "UNC_"}


def word_features(text: str, ngrams: int = 2) -> list[str]:
    """Word n-grams (1..``ngrams``) within clauses, negated ones prefixed ``NEG_``/``UNC_``.

    English words are lower-cased and single letters dropped (as TF-IDF's default pattern);
    Chinese words come from jieba, single characters kept (痛, 咳 are words). Trigger words
    ("no", "否认") stay features of their own too, as a plain bag of words would see them.
    """
    return [f for f, _, _ in word_occurrences(text or "", ngrams)]


@functools.lru_cache(maxsize=100_000)
def word_occurrences(text: str, ngrams: int = 2) -> tuple[tuple[str, int, int], ...]:
    """(feature, start, end) of every word feature of ``text``: where each one was read."""
    out: list[tuple[str, int, int]] = []
    analysis = analyse(text)
    for clause in analysis.clauses():
        words = [t for t in clause if t.language == "zh" or len(t.norm) >= 2]
        prefix = _PREFIX[words[0].polarity] if words else ""
        for n in range(1, ngrams + 1):
            for k in range(len(words) - n + 1):
                gram = words[k : k + n]
                out.append((prefix + "_".join(t.norm for t in gram), gram[0].start, gram[-1].end))
    out.extend(
        (t.norm, t.start, t.end)
        for t in analysis.tokens
        if t.kind == "trigger" and (t.language == "zh" or len(t.norm) >= 2)
    )
    return tuple(out)


def char_features(text: str, low: int = 2, high: int = 4) -> list[str]:
    """Character n-grams (``low``..``high``) within each word/Han run, polarity-prefixed.

    Serves Chinese without a segmenter and English with typos; negated spans get their own
    n-grams ("NEG_发热") so "无发热" and "发热" differ here too.
    """
    return [f for f, _, _ in char_occurrences(text or "", low, high)]


@functools.lru_cache(maxsize=100_000)
def char_occurrences(text: str, low: int = 2, high: int = 4) -> tuple[tuple[str, int, int], ...]:
    """(feature, start, end) of every character n-gram of ``text``."""
    out: list[tuple[str, int, int]] = []
    for clause in analyse(text).clauses():
        prefix = _PREFIX[clause[0].polarity]
        # Chinese words of one clause are joined (n-grams cross jieba's cuts); English words are
        # padded with spaces like sklearn's char_wb. ``places`` maps each character to the text.
        pieces: list[tuple[str, list[int]]] = []
        run = ""
        places: list[int] = []
        for token in clause:
            if token.language == "zh":
                run += token.norm
                places.extend(range(token.start, token.end))
                continue
            if run:
                pieces.append((run, places))
                run, places = "", []
            edge = [token.start]
            pieces.append(
                (f" {token.norm} ", edge + list(range(token.start, token.end)) + [token.end - 1])
            )
        if run:
            pieces.append((run, places))
        for piece, where in pieces:
            length = len(piece)
            if length < low:
                out.append((prefix + piece, where[0], where[-1] + 1))
                continue
            for n in range(low, high + 1):
                out.extend(
                    [
                        (prefix + piece[k : k + n], where[k], where[k + n - 1] + 1)
                        for k in range(length - n + 1)
                    ]
                )
    return tuple(out)


def sequence_tokens(text: str) -> list[str]:
    """The token sequence the neural text models read: words with polarity, triggers kept.

    Chinese words are also split into characters (``"胸痛" -> "胸痛", "胸", "痛"``) is *not* done:
    the CNN's character channel covers that; here one token per word keeps sequences short.
    """
    return list(_sequence_tokens(text or ""))


@functools.lru_cache(maxsize=100_000)
def _sequence_tokens(text: str) -> tuple[str, ...]:
    out: list[str] = []
    for token in analyse(text).tokens:
        if token.kind == "break":
            out.append("<sep>")
        elif token.kind in ("word", "trigger"):
            out.append(_PREFIX[token.polarity] + token.norm)
    return tuple(out)
