"""Red-flag screens that do not depend on any model: read the notes (English or Chinese) and the
triage vitals, and say what must happen now.

Each screen is a small clinical pattern over findings written in the notes, with NegEx polarity
from :mod:`predictions.ml.text` (a negated finding never counts: "no sweating", "无出汗"; an
uncertain one does, because a screen should rather ask than miss):

========================  =====================================================================
rule                      fires on (reference)
========================  =====================================================================
``possible_acs``          chest pain with radiation, sweating or an exertional pattern: 12-lead
                          ECG within 10 minutes, troponin (NICE CG95; ESC 2023 ACS; AHA/ACC
                          2021 chest pain: ECG within 10 minutes of first contact)
``stroke_fast``           any FAST sign: face droop, one-sided arm/leg weakness, speech
                          disturbance (NICE NG128)
``anaphylaxis``           anaphylaxis named, airway swelling, or skin signs with breathing or
                          circulation compromise after an exposure (Resuscitation Council UK 2021)
``dka_pattern``           diabetes (or glucose >= 200 mg/dL) with vomiting, abdominal pain,
                          deep rapid breathing or ketotic breath, or ketoacidosis named (JBDS 2023;
                          ADA consensus 2024)
``meningism``             neck stiffness, Kernig/Brudzinski, non-blanching rash; or headache with
                          fever and photophobia or confusion (NICE NG240)
``gi_bleed``              haematemesis, coffee-ground vomit, melaena, blood per rectum; critical
                          with tachycardia >= 100/min or systolic BP < 100 mmHg (NICE CG141)
========================  =====================================================================

Pure and deterministic: text in, :class:`RedFlag` list out. Vitals come keyed by LOINC code in
canonical units (the caller's catalogue), e.g. ``{"8867-4": 112.0}``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from predictions.ml import text as clinical_text

HEART_RATE, SYSTOLIC_BP, TEMPERATURE, GLUCOSE = "8867-4", "8480-6", "8310-5", "2345-7"
FEVER_C = 38.0  # NICE NG51/NG240: a temperature of 38 °C or more is fever
HYPERGLYCAEMIA_MG_DL = 200.0  # 11.1 mmol/L: JBDS 2023 ("blood glucose > 11 mmol/L"), ADA 2024
SHOCK_HEART_RATE = 100.0  # Glasgow-Blatchford: pulse >= 100/min scores
SHOCK_SYSTOLIC = 100.0  # Glasgow-Blatchford: systolic BP < 100 mmHg scores
ANAPHYLAXIS_SYSTOLIC = 90.0  # RCUK 2021: circulation problem (hypotension)

_BODY = r"(?:the |his |her |my |their |both |one )?"
_SIDE = r"(?:left |right |l |r )?"

# Findings: English regular expressions (case-insensitive, on word boundaries) and Chinese
# regular expressions (no word boundaries: Chinese has no spaces).
FINDINGS: dict[str, dict[str, tuple[str, ...]]] = {
    "chest_pain": {
        "en": (
            r"chest (?:pain|tightness|pressure|heaviness|discomfort|ache|squeezing|burning)",
            r"(?:pain|tightness|pressure|heaviness|discomfort|ache|squeezing|crushing)"
            r" (?:in|across|over|on|behind) " + _BODY + r"(?:chest|sternum|breastbone)",
            r"(?:central|retrosternal|substernal|precordial) (?:chest )?"
            r"(?:pain|discomfort|tightness|pressure|heaviness)",
            r"tight (?:chest|feeling in the chest)",
            r"angina\w*",
        ),
        "zh": (
            r"胸痛",
            r"胸闷",
            r"胸口(?:痛|疼|闷|压迫|不适)",
            r"胸部(?:疼痛|不适|压迫感?|紧缩感?|闷痛)",
            r"(?:胸前区|心前区|胸骨后)(?:疼痛|痛|不适|压迫感?|闷痛|压榨\w?|紧缩感?)?",
            r"心绞痛",
        ),
    },
    "radiation": {
        "en": (
            r"radiat\w*(?: (?:in)?to| down| up| through)? "
            + _BODY
            + _SIDE
            + r"(?:arms?|jaw|neck|shoulders?|back|throat)",
            r"(?:spread\w*|going|goes|moving|moves|travel\w*|shoot\w*) (?:in)?to "
            + _BODY
            + _SIDE
            + r"(?:arms?|jaw|neck|shoulders?|back|throat)",
            r"(?:left|l) (?:arm|shoulder) (?:pain|heaviness|numbness|ache|tingling)",
            r"jaw (?:pain|ache|tightness)",
        ),
        "zh": (
            r"放射",
            r"向(?:左|右|双)?(?:肩|臂|上肢|下颌|颈|后背|背部)",
            r"牵涉(?:至|到)?(?:左|右)?(?:肩|臂|下颌|颈|背)",
            r"左(?:臂|肩|上肢)(?:痛|疼|麻|不适)",
        ),
    },
    "diaphoresis": {
        # "night sweats" are a symptom of their own (infection, lymphoma), not diaphoresis
        "en": (r"(?<!night )sweat\w*", r"diaphore\w*", r"clammy", r"perspir\w*"),
        "zh": (r"出汗", r"大汗", r"冷汗", r"多汗", r"汗出", r"湿冷"),
    },
    "exertional": {
        "en": (
            r"exertional(?! (?:dyspn\w*|breathless\w*|sob\b))",
            r"(?:on|with|during|after|by) (?:exertion|exercise|effort|activity|physical activity)",
            r"(?:when|while|on) (?:walking|climbing|exercising|hurrying|running|going up)\w*",
            r"walking (?:uphill|up hills?|upstairs|up stairs|fast)",
            r"climbing (?:stairs|hills?|a hill)",
            r"(?:settles?|eases?|relieved|goes away|improves?|resolves?)\b[^.;\n]{0,30}\brest\b",
        ),
        "zh": (
            r"活动(?:后|时|中)",
            r"劳累(?:后|时)",
            r"劳力(?:性|后|时)?",
            r"(?:爬楼|上楼|爬坡|快走|运动)(?:梯)?(?:后|时)?",
            r"休息.{0,5}缓解",
        ),
    },
    "face_droop": {
        "en": (
            r"facial (?:droop\w*|weakness|asymmetry|palsy)",
            r"face (?:droop\w*|weak\w*|lopsided)",
            r"(?:droop\w*|drooping|droopy) (?:of )?" + _BODY + _SIDE + r"(?:face|mouth|lip)",
            r"mouth droop\w*",
        ),
        "zh": (r"口角歪斜", r"口眼歪斜", r"嘴歪", r"面瘫", r"口角下垂", r"面部歪斜", r"口角偏斜"),
    },
    "arm_weakness": {
        "en": (
            r"(?:weak\w*|numb\w*|heav(?:y|iness)|paralys\w*) (?:of|in) "
            + _BODY
            + r"(?:left|right|one) (?:arm|leg|side|hand|limb)s?",
            r"(?:left|right|one)[- ]sided (?:weakness|numbness|paralysis)",
            r"unilateral (?:weakness|numbness|paralysis)",
            r"(?:left|right) (?:arm|leg|side|hand) (?:weakness|weak|numbness|numb|paralysis)",
            r"arm (?:weakness|drift)",
            r"(?:cannot|can't|unable to) (?:lift|raise|move) " + _BODY + _SIDE + r"arm",
            r"hemipar\w*",
            r"hemipleg\w*",
        ),
        "zh": (
            r"[一单左右]侧(?:肢体|上肢|下肢|手臂|身体)(?:无力|麻木|活动不利|瘫痪)",
            r"[左右](?:上肢|下肢|手臂|手|腿)(?:无力|麻木|活动不利)",
            r"偏瘫",
            r"半身不遂",
            r"手臂无力",
        ),
    },
    "speech_disturbance": {
        "en": (
            r"slurr\w* (?:speech|words)",
            r"slurring",
            r"speech (?:is )?(?:slurred|difficulty|difficulties|problems?|disturbance|garbled)",
            r"difficulty (?:speaking|talking|finding words|with speech)",
            r"dysarthri\w*",
            r"dysphasi\w*",
            r"aphasi\w*",
            r"(?:cannot|can't|unable to) (?:speak|talk|get " + _BODY + r"words out)",
            r"garbled speech",
        ),
        "zh": (
            r"言语不清",
            r"口齿不清",
            r"(?:说话|讲话|言语|吐字)(?:不清|含糊|困难)",
            r"失语",
            r"不能说话",
            r"言语障碍",
        ),
    },
    "anaphylaxis_named": {
        "en": (r"anaphyla\w*",),
        "zh": (r"过敏性休克", r"严重过敏反应"),
    },
    "airway_swelling": {
        "en": (
            r"(?:swollen|swelling of " + _BODY + r")(?:tongue|lips?|throat|face|mouth)",
            r"(?:tongue|lips?|throat|face|mouth) (?:swelling|swollen|is swelling|tightness|tight|closing)",
            r"angio-?o?edema",
            r"stridor",
        ),
        "zh": (
            r"喉头(?:水肿|发紧|紧缩)",
            r"喉咙(?:发紧|肿)",
            r"舌(?:头)?肿(?:胀|大)?",
            r"(?:嘴唇|口唇|唇部|面部)(?:肿胀|水肿|肿)",
            r"喉鸣",
            r"血管性水肿",
        ),
    },
    "allergic_skin": {
        "en": (r"hives", r"urticari\w*", r"wheals?", r"itchy rash", r"rash all over", r"flushing"),
        "zh": (r"荨麻疹", r"风团", r"全身(?:皮疹|瘙痒|红疹)", r"皮肤潮红"),
    },
    "breathing_problem": {
        "en": (
            r"wheez\w*",
            r"short(?:ness)? of breath",
            r"breathless\w*",
            r"difficulty breathing",
            r"(?:can't|cannot) breathe",
        ),
        "zh": (r"呼吸困难", r"喘息", r"气促", r"气喘", r"憋气", r"胸闷"),
    },
    "allergen_exposure": {
        "en": (
            r"after (?:eating|taking|a dose|an injection|being stung|a sting)",
            r"peanuts?|tree nuts?|shellfish|prawns?",
            r"(?:bee|wasp|insect) stings?|stung",
            r"allerg\w*",
        ),
        "zh": (
            r"蜂(?:蜇|蛰)",
            r"(?:进食|食用|吃了?)\w{0,4}后",
            r"(?:用药|注射|输液)后",
            r"过敏",
            r"花生",
            r"海鲜",
        ),
    },
    "ketoacidosis_named": {
        "en": (r"keto-?acidosis", r"\bDKA\b", r"ketones?", r"ketonuria", r"ketotic"),
        "zh": (r"酮症", r"酸中毒", r"酮体", r"尿酮"),
    },
    "diabetes": {
        "en": (
            r"diabet\w*",
            r"T[12]DM",
            r"IDDM",
            r"insulin",
            r"high (?:blood )?(?:sugar|glucose)s?",
            r"hyperglyc\w*",
            r"polyuria",
            r"polydipsia",
            r"(?:very |extremely |always )?thirsty",
            r"excessive thirst",
        ),
        "zh": (r"糖尿病", r"血糖(?:高|升高|偏高)", r"高血糖", r"多饮", r"多尿", r"口渴", r"胰岛素"),
    },
    "vomiting": {
        "en": (r"vomit\w*", r"being sick", r"emesis"),
        "zh": (r"呕吐",),
    },
    "abdominal_pain": {
        "en": (r"(?:abdominal|abdo|tummy|stomach|belly) (?:pain|ache|cramps?)", r"abdo pain"),
        "zh": (r"腹痛", r"肚子痛", r"腹部疼痛"),
    },
    "kussmaul": {
        "en": (
            r"kussmaul\w*",
            r"deep (?:and |, )?(?:rapid|fast|sighing|laboured) breath\w*",
            r"breath\w* (?:deep|deeply) and (?:fast|rapid\w*)",
            r"air hunger",
        ),
        "zh": (r"呼吸深(?:快|大)", r"深大呼吸", r"呼吸深而快"),
    },
    "ketotic_breath": {
        "en": (
            r"(?:fruity|acetone|pear[- ]drops?|sweet)[- ]?(?:smelling )?breath",
            r"breath (?:smells?|smelling) (?:fruity|of acetone|sweet|of pear drops)",
        ),
        "zh": (r"烂苹果味", r"丙酮味"),
    },
    "neck_stiffness": {
        "en": (
            r"neck stiffness",
            r"stiff neck",
            r"nuchal rigidity",
            r"meningism\w*",
            r"kernig\w*",
            r"brudzinski\w*",
            r"(?:non-?blanching|purpuric|petechial) rash",
            r"rash (?:that )?(?:does not|doesn't|did not) (?:blanch|fade)",
        ),
        "zh": (
            r"颈项强直",
            r"颈强直",
            r"颈抵抗",
            r"(?:脖子|颈部)(?:僵硬|发硬|硬)",
            r"脑膜刺激征",
            r"克氏征",
            r"布氏征",
            r"(?:皮肤)?瘀(?:点|斑)",
        ),
    },
    "headache": {
        "en": (r"headaches?", r"head (?:pain|ache)"),
        "zh": (r"头痛", r"头疼"),
    },
    "fever": {
        "en": (r"fevers?", r"febrile", r"pyrexi\w*", r"high temperature", r"rigors?"),
        "zh": (r"发热", r"发烧", r"高热", r"低热", r"寒战"),
    },
    "photophobia": {
        "en": (
            r"photophobi\w*",
            r"(?:sensitiv\w*|dislikes?|cannot stand|can't stand|hurts?) (?:to )?"
            r"(?:bright )?(?:lights?)",
            r"light hurts",
        ),
        "zh": (r"畏光", r"怕光"),
    },
    "confusion": {
        "en": clinical_text.LEXICON["confusion"]["en"],
        "zh": clinical_text.LEXICON["confusion"]["zh"],
    },
    "gi_blood": {
        "en": (
            r"vomit\w* (?:up )?(?:fresh |dark )?blood",
            r"blood in " + _BODY + r"vomit",
            r"ha?ematemesis",
            r"coffee[- ]grounds?",
            r"mela?ena",
            r"black,? (?:and )?(?:tarry )?(?:stools?|poo|motions|faeces|feces)",
            r"tarry stools?",
            r"(?:fresh |bright red )?blood (?:in|from) "
            + _BODY
            + r"(?:stools?|poo|back passage|rectum|bottom|motions)",
            r"rectal bleed\w*",
            r"bleeding (?:from|per) (?:the )?(?:rectum|back passage)",
            r"ha?ematochezia",
            r"PR bleed\w*",
            r"bloody (?:stools?|diarrho?ea|diarrhea)",
        ),
        "zh": (
            r"呕血",
            r"吐血",
            r"黑便",
            r"柏油样便",
            r"便血",
            r"血便",
            r"大便带血",
            r"咖啡(?:样|渣样?)(?:物|液|胃内容物)?",
        ),
    },
}


@dataclass(frozen=True)
class RedFlag:
    """A screen that fired: its rule, severity, the message (action first) and the evidence."""

    rule: str
    severity: str  # critical | high
    message: str
    evidence: tuple[str, ...]


@functools.cache
def _patterns(finding: str) -> tuple[re.Pattern[str], ...]:
    entry = FINDINGS[finding]
    out = []
    if entry.get("en"):
        out.append(re.compile(r"\b(?:" + "|".join(entry["en"]) + r")\b", re.IGNORECASE))
    if entry.get("zh"):
        out.append(re.compile("|".join(entry["zh"])))
    return tuple(out)


def _polarity(analysis: clinical_text.Analysis, start: int, end: int) -> str:
    """The polarity of the words a mention overlaps (negated wins over uncertain)."""
    found = {
        t.polarity for t in analysis.tokens if t.kind == "word" and t.start < end and t.end > start
    }
    return "NEG" if "NEG" in found else "UNC" if "UNC" in found else ""


def mentions(text: str, finding: str) -> list[str]:
    """The not-negated mentions of ``finding`` in ``text``, as written (uncertain ones count)."""
    if not text:
        return []
    analysis = clinical_text.analyse(text)
    out = []
    for pattern in _patterns(finding):
        for match in pattern.finditer(text):
            if _polarity(analysis, match.start(), match.end()) != "NEG":
                out.append(match.group())
    return list(dict.fromkeys(out))


def _quoted(found: list[str]) -> str:
    return ", ".join(f"“{m}”" for m in found)


class _Reader:
    """The findings of one text, each looked up once."""

    def __init__(self, text: str) -> None:
        self.text = text
        self._cache: dict[str, list[str]] = {}

    def __call__(self, finding: str) -> list[str]:
        if finding not in self._cache:
            self._cache[finding] = mentions(self.text, finding)
        return self._cache[finding]


def _possible_acs(read: _Reader, vitals: Mapping[str, float]) -> RedFlag | None:
    pain = read("chest_pain")
    features = {
        "radiation": read("radiation"),
        "sweating": read("diaphoresis"),
        "exertional pattern": read("exertional"),
    }
    present = {k: v for k, v in features.items() if v}
    if not pain or not present:
        return None
    evidence = [*pain, *(m for v in present.values() for m in v)]
    return RedFlag(
        "possible_acs",
        "critical",
        f"Possible acute coronary syndrome (chest pain with {', '.join(present)}: "
        f"{_quoted(evidence)}): 12-lead ECG within 10 minutes, troponin.",
        tuple(evidence),
    )


def _stroke_fast(read: _Reader, vitals: Mapping[str, float]) -> RedFlag | None:
    signs = {
        "face": read("face_droop"),
        "arm": read("arm_weakness"),
        "speech": read("speech_disturbance"),
    }
    present = {k: v for k, v in signs.items() if v}
    if not present:
        return None
    evidence = [m for v in present.values() for m in v]
    return RedFlag(
        "stroke_fast",
        "critical",
        f"FAST positive ({', '.join(present)}: {_quoted(evidence)}): time last known well, "
        "glucose, stroke pathway and urgent brain imaging now.",
        tuple(evidence),
    )


def _anaphylaxis(read: _Reader, vitals: Mapping[str, float]) -> RedFlag | None:
    named, airway = read("anaphylaxis_named"), read("airway_swelling")
    skin, breathing, exposure = (
        read("allergic_skin"),
        read("breathing_problem"),
        read("allergen_exposure"),
    )
    sbp = vitals.get(SYSTOLIC_BP)
    hypotension = sbp is not None and sbp < ANAPHYLAXIS_SYSTOLIC
    evidence = [*named, *airway]
    if not evidence and skin and exposure and (breathing or hypotension):
        evidence = [*skin, *breathing, *exposure]
        if hypotension:
            evidence.append(f"systolic BP {sbp:g} mmHg")
    if not evidence:
        return None
    return RedFlag(
        "anaphylaxis",
        "critical",
        f"Possible anaphylaxis ({_quoted(evidence)}): airway, breathing, circulation; "
        "IM adrenaline (adult 500 micrograms) now, repeat after 5 minutes if no better.",
        tuple(evidence),
    )


def _dka_pattern(read: _Reader, vitals: Mapping[str, float]) -> RedFlag | None:
    named = read("ketoacidosis_named")
    glucose = vitals.get(GLUCOSE)
    context = read("diabetes")
    if glucose is not None and glucose >= HYPERGLYCAEMIA_MG_DL:
        context = [*context, f"glucose {glucose:g} mg/dL"]
    breathing = [*read("kussmaul"), *read("ketotic_breath")]
    sick = [*read("vomiting"), *read("abdominal_pain")]
    if named:
        evidence = [*named, *context, *breathing, *sick]
    elif context and (breathing or sick):
        evidence = [*context, *breathing, *sick]
    else:
        return None
    return RedFlag(
        "dka_pattern",
        "critical" if breathing or named else "high",
        f"Possible diabetic ketoacidosis ({_quoted(evidence)}): capillary or blood ketones, "
        "venous blood gas (pH, bicarbonate), glucose and potassium now.",
        tuple(evidence),
    )


def _meningism(read: _Reader, vitals: Mapping[str, float]) -> RedFlag | None:
    signs = read("neck_stiffness")
    temperature = vitals.get(TEMPERATURE)
    fever = read("fever")
    if temperature is not None and temperature >= FEVER_C:
        fever = [*fever, f"temperature {temperature:g} °C"]
    headache = read("headache")
    cerebral = [*read("photophobia"), *read("confusion")]
    if signs:
        evidence = [*signs, *fever]
    elif headache and fever and cerebral:
        evidence = [*headache, *fever, *cerebral]
    else:
        return None
    return RedFlag(
        "meningism",
        "critical" if fever else "high",
        f"Possible meningitis ({_quoted(evidence)}): blood cultures and antibiotics without "
        "delay if bacterial meningitis is suspected; look for a non-blanching rash.",
        tuple(evidence),
    )


def _gi_bleed(read: _Reader, vitals: Mapping[str, float]) -> RedFlag | None:
    blood = read("gi_blood")
    if not blood:
        return None
    hr, sbp = vitals.get(HEART_RATE), vitals.get(SYSTOLIC_BP)
    shock = []
    if hr is not None and hr >= SHOCK_HEART_RATE:
        shock.append(f"heart rate {hr:g}/min")
    if sbp is not None and sbp < SHOCK_SYSTOLIC:
        shock.append(f"systolic BP {sbp:g} mmHg")
    evidence = [*blood, *shock]
    return RedFlag(
        "gi_bleed",
        "critical" if shock else "high",
        f"Possible gastrointestinal bleeding ({_quoted(evidence)}): haemodynamics, "
        "haemoglobin, group and save, Glasgow-Blatchford score.",
        tuple(evidence),
    )


SCREENS: dict[str, Callable[[_Reader, Mapping[str, float]], RedFlag | None]] = {
    "possible_acs": _possible_acs,
    "stroke_fast": _stroke_fast,
    "anaphylaxis": _anaphylaxis,
    "dka_pattern": _dka_pattern,
    "meningism": _meningism,
    "gi_bleed": _gi_bleed,
}


def screen(text: str, vitals: Mapping[str, float] | None = None) -> list[RedFlag]:
    """Every red flag the notes and vitals raise, in :data:`SCREENS` order."""
    read = _Reader(text or "")
    found = (check(read, vitals or {}) for check in SCREENS.values())
    return [flag for flag in found if flag is not None]
