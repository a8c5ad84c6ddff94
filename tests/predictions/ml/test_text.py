"""Clinical text in English and Chinese: language per text, jieba words, NegEx negation and
uncertainty scopes, lexicon mentions with polarity, and features that tell negated findings apart."""

from __future__ import annotations

import pytest

from predictions.ml import text


def polarities(sentence: str) -> dict[str, str]:
    return {t.norm: t.polarity for t in text.analyse(sentence).tokens if t.kind == "word"}


@pytest.mark.parametrize(
    ("sentence", "language"),
    [
        ("Chest pain for three hours with sweating", "en"),
        ("胸痛三小时，伴出汗，活动后加重", "zh"),
        ("患者诉 chest pain 三小时，伴出汗", "zh"),
        ("CXR: RLL consolidation, 右下肺", "en"),
        ("", "en"),
    ],
)
def test_language_is_detected_per_text_from_its_script(sentence: str, language: str) -> None:
    assert text.detect_language(sentence) == language


def test_chinese_is_segmented_into_words_not_whole_phrases() -> None:
    """The old token pattern kept "胸痛三小时" whole; jieba splits it into clinical words."""
    words = [t.norm for t in text.analyse("胸痛三小时，伴出汗，活动后加重").words()]
    assert "胸痛" in words
    assert "出汗" in words
    assert "胸痛三小时" not in words
    assert len(words) >= 6


@pytest.mark.parametrize(
    ("sentence", "negated", "affirmed"),
    [
        (
            "Denies chest pain, fever or cough; reports headache",
            {"chest", "fever", "cough"},
            {"headache"},
        ),
        ("No fever. Productive cough for 3 days.", {"fever"}, {"productive", "cough"}),
        ("Cough without sputum but with fever", {"sputum"}, {"cough", "fever"}),
        ("Negative for dysuria, positive for flank pain", {"dysuria"}, {"flank", "pain"}),
        ("Chest pain absent, dyspnoea present", {"chest", "pain"}, {"dyspnoea"}),
        ("否认胸痛、咳嗽，伴呕吐", {"胸痛", "咳嗽"}, {"呕吐"}),
        ("无发热，咳嗽三天", {"发热"}, {"咳嗽"}),
        ("未见下肢水肿，不伴出汗，有心悸", {"下肢水肿", "出汗"}, {"心悸"}),
        ("没有腹泻但是呕吐", {"腹泻"}, {"呕吐"}),
    ],
)
def test_negex_scopes_in_both_languages(
    sentence: str, negated: set[str], affirmed: set[str]
) -> None:
    found = polarities(sentence)
    assert {w for w in negated if found.get(w) == "NEG"} == negated, found
    assert {w for w in affirmed if found.get(w) == ""} == affirmed, found


def test_pseudo_triggers_open_no_scope() -> None:
    """ "无明显诱因出现胸痛" is chest pain without an obvious cause, not "no chest pain"."""
    assert polarities("无明显诱因出现胸痛")["胸痛"] == ""
    assert polarities("No change in the chest pain")["pain"] == ""
    # A word that merely contains a negation character is not a trigger: 无力 is weakness.
    assert polarities("四肢无力两天") == {"四肢无力": "", "两天": ""} or "无力" not in {
        t.norm for t in text.analyse("四肢无力两天").tokens if t.kind == "trigger"
    }


def test_uncertainty_is_its_own_polarity() -> None:
    assert polarities("possible pneumonia")["pneumonia"] == "UNC"
    assert polarities("考虑肺炎可能，待排肺结核")["肺炎"] == "UNC"


def test_negated_findings_become_distinct_features() -> None:
    affirmed = set(text.word_features("Chest pain for two hours"))
    negated = set(text.word_features("No chest pain for two hours"))
    assert "chest_pain" in affirmed
    assert "NEG_chest_pain" in negated
    assert "chest_pain" not in negated
    zh_affirmed = set(text.word_features("胸痛两小时"))
    zh_negated = set(text.word_features("无胸痛两小时"))
    assert "胸痛" in zh_affirmed
    assert "NEG_胸痛" in zh_negated
    assert "胸痛" not in zh_negated
    # Character n-grams see the difference too.
    assert "NEG_胸痛" in text.char_features("无胸痛")
    assert "胸痛" not in text.char_features("无胸痛")


def test_feature_occurrences_point_into_the_text() -> None:
    sentence = "Denies chest pain. 无发热，咳嗽"
    for feature, start, end in text.word_occurrences(sentence):
        written = sentence[start:end].lower()
        plain = feature.removeprefix("NEG_").removeprefix("UNC_")
        assert written.replace(" ", "_") == plain or plain in written
    spans = {f: sentence[a:b] for f, a, b in text.word_occurrences(sentence)}
    assert spans["NEG_chest_pain"] == "chest pain"
    assert spans["NEG_发热"] == "发热"


@pytest.mark.parametrize(
    ("note", "fires"),
    [
        ("患者意识模糊，呼吸急促", True),
        ("家属诉患者嗜睡半天", True),
        ("New confusion since this morning", True),
        ("GCS 13, disorientated to time", True),
        ("? confused", True),
        ("无意识障碍，神志清楚", False),
        ("否认意识模糊", False),
        ("No confusion, alert and oriented", False),
        ("Denies drowsiness or confusion", False),
    ],
)
def test_confusion_lexicon_in_both_languages_respects_negation(note: str, fires: bool) -> None:
    assert bool(text.affirmed(note, "confusion")) is fires


def test_allergy_substances_in_both_languages_unless_denied() -> None:
    assert set(text.substances_in("青霉素过敏（皮疹）")) == {"penicillin"}
    assert set(text.substances_in("Penicillin - anaphylaxis")) == {"penicillin"}
    assert set(text.substances_in("磺胺类药物")) == {"sulfonamide"}
    assert text.substances_in("否认青霉素过敏") == {}
    assert text.substances_in("No known drug allergies; denies penicillin allergy") == {}
