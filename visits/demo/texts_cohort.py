"""How the followed-up cohort's visits are written (:mod:`visits.demo.longitudinal`), in English
and Chinese, with the variety of the cross-sectional notes (:mod:`visits.demo.texts`).

Before, each of the cohort's problems had two fixed sentences per language ("Heartburn",
"Feeling anxious"): the model learnt those four strings, scored 100 % on held-out demo visits
written the same way, and missed patients who said "acid coming up after meals" or "can't stop
worrying". Here each problem has complaints, associated symptoms, denied findings and durations
as patients and clinicians put them, drawn from:

* low back pain (M54.5): NICE NG59 (2016, updated 2020) and NICE CKS "Back pain - low (without
  radiculopathy)": mechanical pain after lifting or bending, stiffness, red flags denied;
* reflux (K21.9): NICE CG184 (2014, updated 2019) and 2020年中国胃食管反流病专家共识: heartburn
  and regurgitation as the typical symptoms, worse after meals, lying or bending;
* anxiety (F41.1): NICE CG113 (2011, updated 2020) and the GAD-7 items; 中国焦虑障碍防治指南
  (第二版): persistent worry, tension, poor sleep, autonomic symptoms;
* tension-type headache (R51): ICHD-3 (2018) 2.x criteria (bilateral, pressing or tightening, not
  aggravated by routine activity, no nausea) and NICE CG150 (2012, updated 2021);
* the follow-up reasons (heart failure, CKD stage 3, diabetes, hypertension, prediabetes, lipids,
  routine check): NICE NG106, NG203, NG28, NG136, PH38, NG238 and the NHS Health Check guidance;
  in Chinese, the terms of 中国2型糖尿病防治指南（2020年版）, 中国血脂管理指南（2023年）,
  KDIGO's 慢性肾脏病 and 健康体检基本项目专家共识 as they appear in outpatient notes.

Written for the clinical picture, not from the clinical vignettes' wording
(``tests/predictions/clinical/vignettes.json``): no vignette sentence is copied here.

Colds (J06.9) are written as the cross-sectional demo writes them.
"""

from __future__ import annotations

from . import texts_zh as zh
from .note_parts import ConditionText
from .sampling import pick
from .texts import TEXTS, TRIAGE_DETAIL, triage_complaint

_ACUTE = ("2 days", "3 days", "since yesterday", "about a week", "4 days", "5/7", "a few days")
_WEEKS = (
    "several weeks",
    "6 weeks",
    "2 months",
    "a few months",
    "3 weeks",
    "on and off for a year",
)
_MONTHS = ("several months", "6 months", "a few months", "a year", "3/12", "months")
_SINCE_LAST = ("3 months", "6 months", "a year", "some months", "")  # since the last visit
_ACUTE_ZH = ("2天", "3天", "1天", "昨日起", "4天", "1周", "5天", "数天")
_WEEKS_ZH = ("数周", "6周", "2个月", "1个多月", "3周", "反复1年")
_MONTHS_ZH = ("数月", "半年", "3个月", "1年余", "2个月", "近半年")
_SINCE_LAST_ZH = ("3个月", "半年", "1年", "数月", "")
_NO_EXAM: tuple[str, ...] = ()
_NO_PLAN: tuple[str, ...] = ()

# English notes. Exam and plan are written by the cohort itself (its treatments), so they are
# empty here; ``extra`` is social history the clinician adds.
COHORT_TEXTS: dict[str, ConditionText] = {
    "J06.9": TEXTS["J06.9"],
    "M54.5": ConditionText(
        (
            "low back pain",
            "backache",
            "back pain",
            "lumbar pain",
            "sore lower back",
            "lower back pain after lifting",
            "back strain",
            "pulled my back",
            "lumbago",
            "pain in the small of the back",
            "stiff and painful back",
            "mechanical back pain",
        ),
        (
            "pain worse on bending",
            "morning stiffness",
            "muscle spasm",
            "pain on movement",
            "difficulty getting out of a chair",
            "ache across the lumbar area",
            "eases lying flat",
            "pain into the buttock",
            "pain on twisting",
        ),
        (
            "leg weakness",
            "numbness in the legs",
            "saddle numbness",
            "bladder or bowel problems",
            "fever",
            "weight loss",
            "trauma",
        ),
        (*_ACUTE, "since lifting at work", "10 days"),
        _NO_EXAM,
        _NO_PLAN,
        ("Works in a warehouse.", "Manual job.", "Lifts patients at work.", "Drives for a living."),
    ),
    "K21.9": ConditionText(
        (
            "heartburn",
            "acid reflux",
            "indigestion",
            "reflux",
            "burning in the chest after meals",
            "acid coming up into the mouth",
            "dyspepsia",
            "regurgitation",
            "retrosternal burning",
            "sour taste in the mouth",
            "upper tummy burning",
            "GORD symptoms",
        ),
        (
            "worse lying down",
            "worse after large meals",
            "acid regurgitation",
            "sour taste",
            "belching",
            "bloating",
            "epigastric discomfort",
            "cough at night",
            "relieved by antacids",
            "burning behind the sternum",
            "worse after spicy food or coffee",
        ),
        (
            "difficulty swallowing",
            "weight loss",
            "vomiting blood",
            "black stools",
            "exertional chest pain",
            "sweating",
        ),
        _WEEKS,
        _NO_EXAM,
        _NO_PLAN,
        ("Drinks coffee daily.", "Overweight.", "Eats late in the evening.", "Smoker."),
    ),
    "F41.1": ConditionText(
        (
            "anxiety",
            "feeling anxious",
            "worry",
            "stress",
            "feeling on edge",
            "nerves",
            "can't stop worrying",
            "feeling tense all the time",
            "worrying about everything",
            "panicky feelings",
            "stressed and not sleeping",
            "anxious and low",
        ),
        (
            "difficulty sleeping",
            "palpitations",
            "muscle tension",
            "irritability",
            "trouble relaxing",
            "unable to sit still",
            "poor concentration",
            "tiredness",
            "butterflies in the stomach",
            "racing thoughts",
            "a sense that something awful will happen",
            "sweaty hands",
        ),
        (
            "suicidal thoughts",
            "thoughts of self-harm",
            "alcohol excess",
            "chest pain",
            "weight loss",
        ),
        _MONTHS,
        _NO_EXAM,
        _NO_PLAN,
        ("Stress at work.", "Recently divorced.", "Caring for a parent.", "Exams coming up."),
    ),
    "R51": ConditionText(
        (
            "headache",
            "headaches",
            "tension headache",
            "pressure headache",
            "tight feeling around the head",
            "band-like headache",
            "bilateral headache",
            "feels like a tight band round the head",
            "daily headaches",
            "head pain",
            "headache at the end of the day",
            "stress headaches",
            "pressure in the head",
        ),
        (
            "on both sides of the head",
            "tightness across the forehead",
            "neck and shoulder tension",
            "pressing pain",
            "worse with stress",
            "tender scalp",
            "dull ache",
            "eases with paracetamol",
            "not worse with activity",
        ),
        (
            "nausea",
            "vomiting",
            "visual aura",
            "light sensitivity",
            "fever",
            "neck stiffness",
            "weakness",
        ),
        _WEEKS,
        _NO_EXAM,
        _NO_PLAN,
        ("Long hours at a screen.", "Stressful job.", "Poor sleep lately."),
    ),
    "I50.9": ConditionText(
        (
            "heart failure review",
            "heart failure clinic",
            "breathlessness review",
            "fluid check",
            "diuretic review",
            "CCF follow-up",
            "HF review",
            "review of furosemide dose",
        ),
        (
            "breathless on exertion",
            "ankles a little swollen",
            "sleeps on two pillows",
            "weight stable",
            "weight up 2 kg",
            "tired",
        ),
        ("chest pain", "palpitations", "dizziness"),
        _SINCE_LAST,
        _NO_EXAM,
        _NO_PLAN,
    ),
    "N18.3": ConditionText(
        (
            "kidney function review",
            "CKD follow-up",
            "renal review",
            "eGFR check",
            "reduced kidney function review",
            "kidney blood test results",
            "creatinine recheck",
            "CKD 3 monitoring",
        ),
        ("feels well", "nocturia", "mild tiredness", "on ramipril", "BP controlled"),
        ("leg swelling", "reduced urine output", "blood in the urine", "itching"),
        _SINCE_LAST,
        _NO_EXAM,
        _NO_PLAN,
    ),
    "E11.2": ConditionText(
        (
            "diabetes and kidney review",
            "diabetic nephropathy review",
            "diabetic kidney disease follow-up",
            "urine protein and sugar review",
            "diabetes renal check",
        ),
        ("protein in the urine", "glucose diary reviewed", "feels well", "on an ACE inhibitor"),
        ("hypos", "leg swelling", "reduced urine output"),
        _SINCE_LAST,
        _NO_EXAM,
        _NO_PLAN,
    ),
    "E11.9": ConditionText(
        (
            "diabetes review",
            "diabetic check",
            "sugar review",
            "T2DM follow-up",
            "diabetes annual review",
            "HbA1c result",
            "metformin review",
            "diabetic clinic",
        ),
        (
            "glucose readings up and down",
            "foot check done",
            "diet improving",
            "occasional thirst",
            "eye screening up to date",
        ),
        ("hypos", "foot ulcers", "visual changes", "numb feet"),
        _SINCE_LAST,
        _NO_EXAM,
        _NO_PLAN,
    ),
    "I10": ConditionText(
        (
            "blood pressure check",
            "BP review",
            "hypertension follow-up",
            "home BP readings",
            "BP medication review",
            "raised BP review",
            "amlodipine review",
            "hypertension review",
        ),
        (
            "home readings in the 140s",
            "occasional headache",
            "feels well",
            "ankle swelling on amlodipine",
            "taking tablets regularly",
        ),
        ("chest pain", "palpitations", "visual disturbance", "breathlessness"),
        _SINCE_LAST,
        _NO_EXAM,
        _NO_PLAN,
    ),
    "R73.0": ConditionText(
        (
            "borderline sugar",
            "prediabetes review",
            "raised blood sugar result",
            "HbA1c result discussion",
            "pre-diabetes follow-up",
            "blood sugar check",
            "impaired glucose review",
            "high risk of diabetes review",
        ),
        (
            "trying to lose weight",
            "cutting down on sugar",
            "walking more",
            "family history of diabetes",
            "referred to a prevention programme",
        ),
        ("thirst", "passing more urine", "weight loss", "blurred vision"),
        _SINCE_LAST,
        _NO_EXAM,
        _NO_PLAN,
    ),
    "E78.5": ConditionText(
        (
            "cholesterol review",
            "statin review",
            "lipid clinic",
            "high cholesterol follow-up",
            "lipids check",
            "atorvastatin review",
            "raised cholesterol",
            "fasting lipids result",
        ),
        (
            "taking the statin daily",
            "diet changes",
            "family history of heart disease",
            "cholesterol down on the last test",
        ),
        ("muscle aches", "chest pain", "side effects"),
        _SINCE_LAST,
        _NO_EXAM,
        _NO_PLAN,
    ),
    "Z00.0": ConditionText(
        (
            "routine check-up",
            "health check",
            "annual physical",
            "general check",
            "medical for work",
            "well person check",
            "check-up, no complaints",
            "NHS health check",
            "pre-employment medical",
        ),
        ("feels well", "no complaints", "wants bloods checked", "exercises regularly"),
        ("chest pain", "shortness of breath", "weight loss", "regular medicines"),
        ("",),
        _NO_EXAM,
        _NO_PLAN,
    ),
}

COHORT_TEXTS_ZH: dict[str, ConditionText] = {
    "J06.9": zh.TEXTS_ZH["J06.9"],
    "M54.5": ConditionText(
        (
            "腰痛",
            "腰部疼痛",
            "腰背痛",
            "下腰痛",
            "腰酸痛",
            "闪腰",
            "搬重物后腰痛",
            "弯腰后腰痛",
            "腰部酸胀",
            "腰肌劳损",
        ),
        (
            "活动后加重",
            "弯腰受限",
            "晨起腰部僵硬",
            "卧床休息后减轻",
            "腰部肌肉紧张",
            "起身困难",
            "转身时疼痛",
            "疼痛放射至臀部",
        ),
        ("下肢无力", "下肢麻木", "会阴部麻木", "大小便失禁", "发热", "外伤"),
        (*_ACUTE_ZH, "10天"),
        _NO_EXAM,
        _NO_PLAN,
        ("从事体力劳动。", "搬运工。", "长期伏案工作。"),
    ),
    "K21.9": ConditionText(
        (
            "反酸",
            "烧心",
            "反酸、烧心",
            "胃灼热",
            "胸骨后烧灼感",
            "嗳气反酸",
            "餐后烧心",
            "泛酸",
            "胃食管反流",
            "上腹烧灼感",
        ),
        (
            "平卧时加重",
            "餐后明显",
            "嗳气",
            "口苦",
            "咽部异物感",
            "夜间咳嗽",
            "上腹胀",
            "弯腰时加重",
            "服抑酸药可缓解",
            "口中酸水",
        ),
        ("吞咽困难", "呕血", "黑便", "体重下降", "活动后胸痛"),
        _WEEKS_ZH,
        _NO_EXAM,
        _NO_PLAN,
        ("喜饮浓茶。", "晚餐过饱。", "吸烟。", "超重。"),
    ),
    "F41.1": ConditionText(
        (
            "焦虑",
            "紧张不安",
            "担心过多",
            "心烦",
            "失眠伴紧张",
            "心神不宁",
            "容易紧张",
            "焦虑情绪",
            "总是担忧",
            "情绪紧张",
        ),
        (
            "入睡困难",
            "心悸",
            "肌肉紧张",
            "易激惹",
            "注意力不集中",
            "出汗",
            "手抖",
            "总感觉要出事",
            "多思多虑",
            "疲乏",
        ),
        ("自杀念头", "胸痛", "饮酒过量", "体重下降"),
        _MONTHS_ZH,
        _NO_EXAM,
        _NO_PLAN,
        ("工作压力大。", "近期家庭变故。", "照顾生病的父母。"),
    ),
    "R51": ConditionText(
        (
            "头痛",
            "头部胀痛",
            "紧张性头痛",
            "头部紧箍感",
            "双侧头痛",
            "头部压迫感",
            "反复头痛",
            "头昏胀痛",
            "后枕部疼痛",
            "头痛伴颈肩酸痛",
        ),
        (
            "双侧颞部压迫感",
            "颈肩部肌肉紧张",
            "劳累后加重",
            "情绪紧张时明显",
            "休息后缓解",
            "持续性钝痛",
            "前额发紧",
            "活动后不加重",
        ),
        ("恶心呕吐", "畏光", "发热", "肢体无力", "视物模糊"),
        _WEEKS_ZH,
        _NO_EXAM,
        _NO_PLAN,
        ("长期使用电脑。", "睡眠不足。", "工作压力大。"),
    ),
    "I50.9": ConditionText(
        ("心衰复诊", "心力衰竭随访", "气促复查", "利尿剂调整", "心衰门诊", "心功能不全复诊"),
        ("活动后气短", "双下肢轻度水肿", "夜间需高枕", "体重稳定", "体重增加2公斤", "乏力"),
        ("胸痛", "心悸", "头晕"),
        _SINCE_LAST_ZH,
        _NO_EXAM,
        _NO_PLAN,
    ),
    "N18.3": ConditionText(
        (
            "肾功能复查",
            "慢性肾脏病随诊",
            "慢性肾病复诊",
            "复查肌酐",
            "肾小球滤过率下降随访",
            "CKD随访",
        ),
        ("自觉良好", "夜尿增多", "轻度乏力", "血压控制可"),
        ("水肿", "尿量减少", "肉眼血尿", "皮肤瘙痒"),
        _SINCE_LAST_ZH,
        _NO_EXAM,
        _NO_PLAN,
    ),
    "E11.2": ConditionText(
        ("糖尿病肾病复诊", "糖尿病肾病随诊", "尿蛋白复查", "糖尿病伴肾功能复查"),
        ("尿中有泡沫", "血糖记录已查看", "自觉良好"),
        ("低血糖", "水肿", "尿量减少"),
        _SINCE_LAST_ZH,
        _NO_EXAM,
        _NO_PLAN,
    ),
    "E11.9": ConditionText(
        (
            "糖尿病复诊",
            "降糖药复诊",
            "血糖复查",
            "2型糖尿病随访",
            "糖化血红蛋白复查",
            "糖尿病年度评估",
        ),
        ("血糖波动", "已查足", "饮食控制改善", "偶有口干"),
        ("低血糖", "足部溃疡", "视物模糊", "足部麻木"),
        _SINCE_LAST_ZH,
        _NO_EXAM,
        _NO_PLAN,
    ),
    "I10": ConditionText(
        ("血压复查", "高血压复诊", "降压药复诊", "家庭血压偏高", "高血压随访", "测血压"),
        ("家庭血压140左右", "偶有头晕", "自觉良好", "规律服药", "服氨氯地平后踝部水肿"),
        ("胸痛", "心悸", "视物模糊", "气促"),
        _SINCE_LAST_ZH,
        _NO_EXAM,
        _NO_PLAN,
    ),
    "R73.0": ConditionText(
        (
            "血糖偏高随访",
            "糖调节受损复诊",
            "空腹血糖受损复查",
            "糖尿病前期随访",
            "复查血糖",
            "体检血糖偏高",
        ),
        ("正在减重", "控制甜食", "坚持散步", "有糖尿病家族史"),
        ("口渴", "多尿", "体重下降", "视物模糊"),
        _SINCE_LAST_ZH,
        _NO_EXAM,
        _NO_PLAN,
    ),
    "E78.5": ConditionText(
        (
            "血脂复查",
            "调脂治疗随访",
            "高脂血症复诊",
            "他汀类药物复诊",
            "胆固醇偏高复查",
            "复查血脂",
        ),
        ("规律服用他汀", "饮食已调整", "有冠心病家族史", "上次血脂已下降"),
        ("肌肉酸痛", "胸痛", "药物不良反应"),
        _SINCE_LAST_ZH,
        _NO_EXAM,
        _NO_PLAN,
    ),
    "Z00.0": ConditionText(
        ("健康检查", "例行体检", "年度体检", "入职体检", "健康体检", "单位体检", "常规体检"),
        ("自觉良好", "无不适", "要求查血", "规律运动"),
        ("胸痛", "气促", "体重下降", "长期服药"),
        ("",),
        _NO_EXAM,
        _NO_PLAN,
    ),
}

# Complaints a follow-up visit is often booked under, whatever it is about.
_GENERIC_FOLLOW_UP = ("review", "follow up", "routine review", "med review", "results")
_GENERIC_FOLLOW_UP_ZH = ("复诊", "随访", "开药", "看结果")
_OPENINGS = ("{cc}", "Pt attends for {cc}", "Seen for {cc}", "{age}{sx}, {cc}", "C/o {cc}")
_LEADS = ("Also", "Associated with", "Some", "With", "+")
_NEG_FORMS = ("Denies {x}.", "No {x}.", "Nil {x}.")

# Uniform draws per visit (:func:`cohort_note` reads them by position).
DRAWS = 14
# Share of follow-up visits booked under a generic complaint ("review", "复诊"). Kept small: the
# cohort has about three times as many follow-ups as the cross-sectional demo has visits with a
# generic complaint, and at 0.15 "review" became mostly a cohort word (on the demo's held-out
# patients, front-door top-1 80.4 % at 0.15, 82.4 % at 0.05; the vignettes alike).
GENERIC_FOLLOW_UP = 0.05
ROUTINE = "Z00.0"  # a check-up: booked as what it is


def cohort_note(
    code: str, *, acute: bool, chinese: bool, age: int, female: bool, u: list[float]
) -> tuple[str, str]:
    """(chief complaint, history) of one cohort visit about ``code``, from ``DRAWS`` uniforms."""
    t = (COHORT_TEXTS_ZH if chinese else COHORT_TEXTS)[code]
    if not acute and code != ROUTINE and u[0] < GENERIC_FOLLOW_UP:
        cc = pick(_GENERIC_FOLLOW_UP_ZH if chinese else _GENERIC_FOLLOW_UP, u[1])
        complaint = cc
    else:
        cc = pick(t.complaints, u[1])
        complaint = cc
        if u[2] < TRIAGE_DETAIL:  # as triage writes it: with a symptom, a duration, a denial
            complaint = triage_complaint(cc, t, u[3:11], chinese=chinese)
    duration = pick(t.durations, u[11])
    # An acute problem has lasted ``duration``; a follow-up was last seen ``duration`` ago.
    onset, last_seen = (duration, "") if acute else ("", duration)
    syms: list[str] = []
    for k in range(int(u[12] * 3.0)):  # 0-2 associated symptoms
        s = pick(t.symptoms, (u[12 + k % 2] * (10.0 + k)) % 1.0)
        if s not in syms:
            syms.append(s)
    negative = pick(t.negatives, (u[13] * 10.0) % 1.0) if u[13] < 0.6 else ""
    extra = pick(t.extra, (u[13] * 100.0) % 1.0) if t.extra and (u[11] * 10.0) % 1.0 < 0.4 else ""
    if chinese:
        parts = [
            pick(zh.OPENINGS_ZH, (u[0] * 10.0) % 1.0).format(
                cc=cc, dur=onset, age=age, sex="女" if female else "男"
            )
        ]
        if last_seen:
            parts.append(f"距上次复诊{last_seen}。")
        if syms:
            parts.append(f"{pick(zh.LEADS_ZH, (u[2] * 10.0) % 1.0)}{'、'.join(syms)}。")
        if negative:
            parts.append(pick(zh.NEG_FORMS_ZH, (u[3] * 10.0) % 1.0).format(x=negative))
        parts.append(extra)
        return complaint, "".join(parts)
    opening = pick(_OPENINGS, (u[0] * 10.0) % 1.0).format(cc=cc, age=age, sx="F" if female else "M")
    parts = [f"{opening} for {onset}." if onset else f"{opening}."]
    if last_seen:
        parts.append(f"Last seen {last_seen} ago.")
    if syms:
        parts.append(f"{pick(_LEADS, (u[2] * 10.0) % 1.0)} {' and '.join(syms)}.")
    if negative:
        parts.append(pick(_NEG_FORMS, (u[3] * 10.0) % 1.0).format(x=negative))
    if extra:
        parts.append(extra)
    return complaint, " ".join(parts)
