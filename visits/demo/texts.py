"""The free text of demo visits: complaints, histories, examinations and plans, made messy.

Notes are written the way clinicians write them: synonyms, abbreviations, negations, sparse or
misleading histories (more so for atypical presentations), inconsistent case and typos.
"""

from __future__ import annotations

import numpy as np

from . import texts_zh as zh
from .conditions import CODES, SPECS
from .note_parts import ConditionText
from .sampling import pick

__all__ = ["TEXTS", "ConditionText", "free_text", "mess_text"]


_ACUTE = (
    "2 days",
    "3 days",
    "since yesterday",
    "x3/7",
    "24 hours",
    "several hours",
    "4 days",
    "about a week",
    "since this morning",
    "48h",
    "5/7",
)
_HYPERACUTE = (
    "1 hour",
    "2 hours",
    "30 minutes",
    "since this morning",
    "3 hrs",
    "overnight",
    "since waking",
    "40 min",
)
_CHRONIC = (
    "several weeks",
    "3 months",
    "a few months",
    "6 weeks",
    "over a year",
    "2/12",
    "longstanding",
    "months",
)

TEXTS: dict[str, ConditionText] = {
    "J06.9": ConditionText(
        (
            "sore throat",
            "runny nose",
            "cough and cold",
            "blocked nose",
            "scratchy throat",
            "cold symptoms",
            "sneezing, sore throat",
            "mild fever and cough",
            "coryza",
            "cough",
        ),
        (
            "nasal congestion",
            "rhinorrhoea",
            "dry cough",
            "mild headache",
            "hoarse voice",
            "low grade fever",
            "sneezing",
            "myalgia",
            "sore throat",
        ),
        ("shortness of breath", "chest pain", "productive sputum", "rigors", "ear pain"),
        _ACUTE,
        (
            "Pharynx mildly erythematous, no exudate. Chest clear.",
            "Mild tonsillar erythema. Lungs clear bilaterally.",
            "Nasal mucosa swollen. No lymphadenopathy. Chest clear.",
            "Well, afebrile. Chest clear.",
        ),
        (
            "Supportive care, fluids, paracetamol. Return if worse.",
            "Symptomatic treatment, no antibiotics indicated.",
            "Safety-netting advice given. Rest and fluids.",
        ),
        ("Kids at home unwell too.", "Works in an office, colleagues sick.", ""),
    ),
    "J18.9": ConditionText(
        (
            "cough with fever",
            "productive cough",
            "shortness of breath",
            "fever and chills",
            "cough, green sputum",
            "pleuritic chest pain",
            "SOB and fever",
            "cough",
            "fever",
        ),
        (
            "productive cough",
            "purulent sputum",
            "fever",
            "rigors",
            "pleuritic chest pain",
            "breathlessness",
            "night sweats",
            "fatigue",
            "reduced appetite",
        ),
        ("haemoptysis", "leg swelling", "recent travel", "wheeze"),
        _ACUTE,
        (
            "Crackles right base, bronchial breathing.",
            "Reduced air entry left lower zone, dull to percussion.",
            "Coarse crepitations at bases. Tachypnoeic.",
            "Febrile, crackles R mid zone.",
        ),
        (
            "CXR, start amoxicillin + clarithromycin. CURB-65 calculated.",
            "Admit, IV antibiotics, oxygen to target sats.",
            "Oral antibiotics, review in 48h, CXR in 6 weeks.",
        ),
        ("Smoker.", "Recent flu-like illness.", "Lives alone.", ""),
    ),
    "I10": ConditionText(
        (
            "high blood pressure",
            "BP check",
            "headache",
            "elevated BP at pharmacy",
            "hypertension follow-up",
            "dizziness",
            "routine review",
            "med review",
            "raised BP",
        ),
        (
            "occasional headaches",
            "mild dizziness",
            "no symptoms",
            "tinnitus",
            "home readings elevated",
            "poor sleep",
        ),
        ("chest pain", "visual disturbance", "shortness of breath", "palpitations", "weakness"),
        _CHRONIC,
        (
            "BP elevated on repeat measurement. Heart sounds normal. No oedema.",
            "Fundi not examined. HS I+II+0.",
            "Well. No focal neurology. Peripheral pulses present.",
        ),
        (
            "Start amlodipine 5 mg, lifestyle advice, recheck in 4 weeks.",
            "Increase ramipril, U&E in 2 weeks.",
            "Home BP monitoring, review in clinic.",
            "Salt reduction, exercise.",
        ),
        ("Family history of stroke.", "Drinks 20 units/week.", "Stressful job.", ""),
    ),
    "E11.9": ConditionText(
        (
            "high sugar",
            "polyuria",
            "excessive thirst",
            "diabetes review",
            "tiredness",
            "blurred vision",
            "frequent urination",
            "glucose follow-up",
            "sugar check",
        ),
        (
            "polydipsia",
            "polyuria",
            "fatigue",
            "weight loss",
            "blurred vision",
            "tingling in feet",
            "recurrent thrush",
            "nocturia",
        ),
        ("vomiting", "abdominal pain", "chest pain", "foot ulcers"),
        _CHRONIC,
        (
            "BMI raised. Feet: sensation intact, pulses present.",
            "Monofilament normal. No retinopathy reported.",
            "Acanthosis nigricans noted. Feet intact.",
        ),
        (
            "Metformin titration, dietitian referral, HbA1c in 3 months.",
            "Add gliclazide, structured education.",
            "Annual review bloods, foot check, retinal screening.",
        ),
        ("Sedentary.", "Mother had diabetes.", "Shift worker, irregular meals.", ""),
    ),
    "I21.9": ConditionText(
        (
            "chest pain",
            "crushing chest pain",
            "chest tightness",
            "left arm pain and sweating",
            "chest pressure",
            "epigastric pain",
            "collapse",
            "central chest pain",
            "CP",
        ),
        (
            "radiation to left arm",
            "radiation to jaw",
            "diaphoresis",
            "nausea",
            "breathlessness",
            "sweating",
            "feeling of impending doom",
            "lightheadedness",
        ),
        ("pleuritic component", "fever", "cough", "trauma"),
        _HYPERACUTE,
        (
            "Pale, clammy. HS normal. Chest clear.",
            "Diaphoretic, distressed. No murmurs.",
            "Bibasal crackles. JVP not raised.",
            "Anxious, sweaty, BP as charted.",
        ),
        (
            "ECG: ST elevation anterior leads. Aspirin 300 mg, cath lab activated.",
            "Serial troponins, dual antiplatelet, cardiology review.",
            "Primary PCI pathway, GTN, morphine, oxygen if hypoxic.",
        ),
        ("Ex-smoker.", "Known hypercholesterolaemia.", "Father had MI at 55.", ""),
    ),
    "I25.1": ConditionText(
        (
            "exertional chest pain",
            "chest tightness on exertion",
            "angina",
            "cardiology follow-up",
            "chest discomfort walking uphill",
            "breathless on exertion",
            "chest pain",
            "review",
        ),
        (
            "pain relieved by rest",
            "relieved by GTN",
            "exertional dyspnoea",
            "reduced exercise tolerance",
            "tightness when cold",
        ),
        ("rest pain", "syncope", "palpitations", "orthopnoea"),
        _CHRONIC,
        (
            "HS normal, no murmurs. Chest clear. No oedema.",
            "Well at rest. Peripheral pulses palpable.",
            "Carotid bruit R. HS normal.",
        ),
        (
            "Optimise statin, GTN spray, exercise tolerance test.",
            "Continue aspirin, bisoprolol; CT coronary angiogram.",
            "Cardiology referral, lipid profile.",
        ),
        ("Previous stent 2019.", "Smoker 30 pack-years.", "Hyperlipidaemia.", ""),
    ),
    "J45.9": ConditionText(
        (
            "wheeze",
            "shortness of breath",
            "chest tightness",
            "night cough",
            "asthma attack",
            "wheezing and cough",
            "inhaler not helping",
            "SOB",
            "cough",
        ),
        (
            "wheeze",
            "nocturnal cough",
            "chest tightness",
            "using reliever more often",
            "triggered by cold air",
            "worse with exercise",
            "hay fever",
        ),
        ("fever", "sputum", "chest pain", "ankle swelling"),
        (*_ACUTE, "a few weeks"),
        (
            "Widespread expiratory wheeze.",
            "Prolonged expiration, scattered wheeze. Speaking full sentences.",
            "Mild wheeze, good air entry.",
            "Chest clear today.",
        ),
        (
            "Salbutamol nebs, prednisolone 40 mg 5 days.",
            "Step up to ICS/LABA, inhaler technique reviewed.",
            "Asthma action plan updated, peak flow diary.",
        ),
        ("Cat at home.", "Childhood asthma.", "Non-smoker.", ""),
    ),
    "J44.1": ConditionText(
        (
            "worsening breathlessness",
            "increased sputum",
            "SOB",
            "COPD flare",
            "wheeze and cough",
            "can't catch breath",
            "productive cough",
            "breathlessness",
            "chest infection",
        ),
        (
            "increased sputum volume",
            "sputum purulence",
            "wheeze",
            "breathless at rest",
            "reduced exercise tolerance",
            "using accessory muscles",
            "cough",
        ),
        ("chest pain", "haemoptysis", "leg swelling", "fever"),
        _ACUTE,
        (
            "Hyperexpanded chest, widespread wheeze, reduced air entry.",
            "Pursed lip breathing, coarse crackles.",
            "Tachypnoeic, quiet chest bilaterally.",
        ),
        (
            "Nebulised bronchodilators, prednisolone, doxycycline. Target sats 88-92%.",
            "Controlled oxygen, ABG, CXR.",
            "Rescue pack started, pulmonary rehab referral.",
        ),
        ("Ex-smoker 40 pack-years.", "Home oxygen.", "2 exacerbations this year.", ""),
    ),
    "N39.0": ConditionText(
        (
            "burning urination",
            "dysuria",
            "urinary frequency",
            "pain passing urine",
            "cloudy urine",
            "suprapubic pain",
            "urgency",
            "UTI symptoms",
            "smelly urine",
        ),
        (
            "dysuria",
            "frequency",
            "urgency",
            "suprapubic discomfort",
            "haematuria",
            "offensive smelling urine",
            "low grade fever",
        ),
        ("loin pain", "vaginal discharge", "vomiting", "rigors"),
        _ACUTE,
        (
            "Suprapubic tenderness. No renal angle tenderness.",
            "Abdomen soft, mildly tender suprapubically.",
            "Urine dip: nitrites +, leucocytes ++.",
        ),
        (
            "Nitrofurantoin 3 days, MSU sent.",
            "Trimethoprim, fluids, return if loin pain.",
            "Urine culture, empirical antibiotics.",
        ),
        ("Previous UTI last year.", "Sexually active.", ""),
    ),
    "K35.8": ConditionText(
        (
            "abdominal pain",
            "right lower quadrant pain",
            "RLQ pain",
            "pain around umbilicus moving to right",
            "abdominal pain and vomiting",
            "stomach ache",
            "fever and abdominal pain",
            "tummy pain",
        ),
        (
            "periumbilical pain migrating to RIF",
            "anorexia",
            "nausea",
            "vomiting",
            "pain worse on movement",
            "low grade fever",
        ),
        ("diarrhoea", "urinary symptoms", "vaginal bleeding", "previous similar episodes"),
        (*_HYPERACUTE, "since yesterday", "24 hours"),
        (
            "Tender RIF, guarding, rebound positive.",
            "McBurney's point tenderness, Rovsing's sign positive.",
            "Localised peritonism right iliac fossa.",
        ),
        (
            "Surgical review, NBM, IV fluids, appendicectomy.",
            "Ultrasound abdomen, surgical referral.",
            "CT abdomen, IV antibiotics, theatre.",
        ),
        ("No previous surgery.", ""),
    ),
    "A09": ConditionText(
        (
            "diarrhoea",
            "vomiting and diarrhea",
            "loose stools",
            "stomach cramps",
            "food poisoning",
            "D&V",
            "abdominal pain",
            "vomiting",
            "diarrhea",
        ),
        (
            "watery diarrhoea",
            "vomiting",
            "crampy abdominal pain",
            "nausea",
            "fever",
            "unable to keep fluids down",
            "feeling weak",
        ),
        ("blood in stool", "recent antibiotics", "foreign travel", "localised pain"),
        _ACUTE,
        (
            "Abdomen soft, diffusely tender, bowel sounds active.",
            "Dry mucous membranes. Abdomen soft, non-tender.",
            "Mild generalised tenderness, no guarding.",
        ),
        (
            "Oral rehydration, antiemetic, stool sample if persists.",
            "IV fluids, check U&E.",
            "Hygiene advice, return if bloody stool.",
        ),
        ("Ate at a restaurant 2 days ago.", "Household contacts similar.", ""),
    ),
    "I50.9": ConditionText(
        (
            "shortness of breath",
            "swollen legs",
            "ankle swelling",
            "breathless lying flat",
            "weight gain and SOB",
            "orthopnoea",
            "fatigue",
            "SOB",
            "breathlessness",
        ),
        (
            "orthopnoea",
            "paroxysmal nocturnal dyspnoea",
            "ankle oedema",
            "weight gain",
            "reduced exercise tolerance",
            "fatigue",
            "nocturia",
        ),
        ("chest pain", "fever", "productive cough", "palpitations"),
        ("1 week", "2 weeks", "several days", "10 days", "a few weeks", "5/7"),
        (
            "Pitting oedema to knees, raised JVP, bibasal crackles.",
            "S3 gallop, bilateral crackles, sacral oedema.",
            "Bilateral ankle oedema, fine basal crackles.",
        ),
        (
            "IV furosemide, fluid restriction, daily weights, echo.",
            "Increase diuretic, BNP, heart failure nurse.",
            "Optimise ACEi/beta-blocker, U&E in 1 week.",
        ),
        ("Known LV impairment.", "Previous MI.", "Poor compliance with tablets.", ""),
    ),
    "G43.9": ConditionText(
        (
            "headache",
            "migraine",
            "throbbing headache",
            "headache with nausea",
            "one-sided headache",
            "visual aura and headache",
            "light sensitivity",
            "bad headache",
        ),
        (
            "photophobia",
            "phonophobia",
            "nausea",
            "visual aura",
            "unilateral throbbing",
            "similar previous episodes",
            "worse with activity",
        ),
        ("fever", "neck stiffness", "weakness", "thunderclap onset", "head injury"),
        ("6 hours", "since yesterday", "overnight", "2 days", "12 hours", "recurrent for years"),
        (
            "Neuro exam normal. No neck stiffness. Fundi normal.",
            "Photophobic, otherwise normal neurology.",
            "GCS 15, cranial nerves intact.",
        ),
        (
            "Triptan, NSAID, antiemetic; headache diary.",
            "Propranolol prophylaxis, review 8 weeks.",
            "Analgesia, dark room, safety-net red flags.",
        ),
        ("Triggered by stress and poor sleep.", "On combined pill.", "Mother has migraines.", ""),
    ),
    "A41.9": ConditionText(
        (
            "fever",
            "confusion",
            "feeling very unwell",
            "rigors",
            "fever and low BP",
            "drowsy",
            "fever and shortness of breath",
            "collapse",
            "unwell",
        ),
        (
            "rigors",
            "confusion",
            "reduced urine output",
            "vomiting",
            "mottled skin",
            "breathlessness",
            "lethargy",
        ),
        ("chest pain", "rash", "neck stiffness", "recent surgery"),
        ("12 hours", "since yesterday", "24 hours", "2 days", "overnight", "since this morning"),
        (
            "Flushed, warm peripheries, tachycardic.",
            "Cool peripheries, CRT 4s, confused.",
            "Mottled knees, hypotensive, drowsy.",
        ),
        (
            "Sepsis six: blood cultures, lactate, IV antibiotics, fluids, oxygen, urine output.",
            "Fluid resuscitation, broad-spectrum antibiotics, ICU review.",
            "Source control, cultures, IV piperacillin-tazobactam.",
        ),
        ("Nursing home resident.", "Immunosuppressed.", "Recent UTI.", ""),
    ),
    "D50.9": ConditionText(
        (
            "fatigue",
            "tiredness",
            "pale",
            "shortness of breath on exertion",
            "dizziness",
            "low energy",
            "palpitations",
            "tired all the time",
            "hair loss",
        ),
        (
            "fatigue",
            "exertional breathlessness",
            "pallor",
            "heavy periods",
            "brittle nails",
            "cold intolerance",
            "reduced concentration",
        ),
        ("weight loss", "melaena", "rectal bleeding", "night sweats"),
        _CHRONIC,
        (
            "Conjunctival pallor. Koilonychia.",
            "Pale. Flow murmur. Abdomen soft.",
            "Pallor, otherwise unremarkable.",
        ),
        (
            "Ferrous sulfate 200 mg daily, recheck FBC 4 weeks.",
            "Iron studies, coeliac screen, GI referral if no cause.",
            "IV iron considered; gynae referral for menorrhagia.",
        ),
        ("Vegetarian diet.", "Menorrhagia.", "Blood donor.", ""),
    ),
}

# How patients and triage nurses say it at the front door, per condition: (complaints, associated
# symptoms) added to the clinical wording above. Written from the presenting features each
# condition's guideline lists (NICE CKS and guidelines, ESC, GINA/BTS, GOLD, WSES, ICHD-3), in lay
# and triage words, so a complaint typed at the desk reads like the training notes.
TRIAGE_WORDING: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "J06.9": (
        (
            "head cold",
            "tickly cough and sore throat",
            "blocked and runny nose",
            "flu-like symptoms",
        ),
        ("runny nose", "blocked nose", "body aches", "feeling feverish", "tickly cough"),
    ),
    "J18.9": (
        (
            "chest infection",
            "fever and cough with phlegm",
            "cough, fever and breathlessness",
            "shivers and cough",
        ),
        (
            "green or rusty sputum",
            "shaking chills",
            "sharp pain on breathing in",
            "short of breath",
            "high temperature",
        ),
    ),
    "I10": (
        (
            "high BP reading",
            "blood pressure high on home monitor",
            "morning headaches",
            "BP high at the pharmacy",
        ),
        ("morning headache", "high readings at home", "feels well otherwise", "nosebleed"),
    ),
    "E11.9": (
        (
            "thirsty all the time",
            "passing lots of urine",
            "weight loss and thirst",
            "raised sugar on blood test",
        ),
        (
            "very thirsty",
            "passing urine a lot",
            "tired all the time",
            "numbness in the feet",
            "cuts slow to heal",
            "up at night to pass urine",
        ),
    ),
    "I21.9": (
        (
            "chest pain radiating to the arm",
            "central chest pain and sweating",
            "heavy chest pain",
            "chest pressure with nausea",
            "tight chest and clammy",
            "chest pain at rest",
        ),
        (
            "cold sweat",
            "clammy",
            "pain going into the jaw",
            "pain down the left arm",
            "heaviness in the chest",
            "came on at rest",
            "vomiting",
            "pain spreading to the back and arm",
        ),
    ),
    "I25.1": (
        (
            "chest pain on walking",
            "angina on exertion",
            "chest tight climbing stairs",
            "using GTN spray more often",
            "heavy chest when hurrying",
        ),
        (
            "settles with rest",
            "brought on by exertion",
            "comes on climbing stairs",
            "eases with GTN",
            "worse in the cold",
        ),
    ),
    "J45.9": (
        (
            "wheezy and breathless",
            "tight chest and wheeze",
            "blue inhaler not working",
            "breathless after exercise",
            "asthma flare",
        ),
        (
            "wheezy",
            "coughing at night",
            "triggered by pets or dust",
            "using reliever a lot",
            "tight chest",
        ),
    ),
    "J44.1": (
        (
            "COPD exacerbation",
            "more breathless than usual",
            "more phlegm, now green",
            "worse cough and breathlessness",
            "emphysema flare",
        ),
        (
            "more sputum than usual",
            "sputum changed colour",
            "breathless walking to the bathroom",
            "wheezy",
            "can't finish sentences",
        ),
    ),
    "N39.0": (
        (
            "stinging when passing urine",
            "cystitis",
            "need to pass urine all the time",
            "lower tummy pain and burning urine",
        ),
        (
            "burning on passing urine",
            "passing urine often",
            "lower abdominal pain",
            "cloudy urine",
            "strong-smelling urine",
        ),
    ),
    "K35.8": (
        (
            "pain in the right lower tummy",
            "pain moved from the navel to the right side",
            "RIF pain",
            "right-sided abdominal pain and vomiting",
        ),
        (
            "off food",
            "pain worse on coughing or walking",
            "pain moved to the right lower abdomen",
            "fever",
            "pain began around the navel",
        ),
    ),
    "A09": (
        (
            "tummy bug",
            "gastro",
            "runny stools and vomiting",
            "stomach cramps and diarrhoea",
            "sickness and diarrhea",
        ),
        (
            "watery stools",
            "loose stools many times a day",
            "stomach cramps",
            "others at home ill",
            "thirsty and dry mouth",
        ),
    ),
    "I50.9": (
        (
            "breathless with swollen ankles",
            "can't lie flat",
            "waking at night breathless",
            "leg swelling and breathlessness",
            "weight up and legs swollen",
        ),
        (
            "needs more pillows",
            "swollen ankles",
            "breathless lying flat",
            "wakes up gasping",
            "weight gain",
            "breathless on minimal exertion",
        ),
    ),
    "G43.9": (
        (
            "migraine attack",
            "headache with flashing lights",
            "one-sided headache with nausea",
            "headache and vomiting, light hurts",
        ),
        (
            "light hurts the eyes",
            "noise makes it worse",
            "flashing lights before the headache",
            "zigzag lines in vision",
            "throbbing on one side",
            "wants a dark room",
        ),
    ),
    "A41.9": (
        (
            "high fever and confusion",
            "fever and shivering",
            "very unwell and drowsy",
            "fever with low blood pressure",
            "collapse with fever",
        ),
        (
            "shivering",
            "racing heart",
            "hardly passing urine",
            "cold mottled skin",
            "very drowsy",
            "confused",
        ),
    ),
    "D50.9": (
        (
            "pale and tired",
            "low iron",
            "heavy periods and tiredness",
            "breathless on stairs and tired",
            "low haemoglobin",
        ),
        (
            "looks pale",
            "heavy periods",
            "breathless on stairs",
            "heart pounding",
            "restless legs",
            "cold hands and feet",
        ),
    ),
}
TEXTS = {
    code: ConditionText(
        t.complaints + TRIAGE_WORDING[code][0],
        t.symptoms + TRIAGE_WORDING[code][1],
        t.negatives,
        t.durations,
        t.exam,
        t.plan,
        t.extra,
    )
    for code, t in TEXTS.items()
}
# Share of visits written in Chinese: the demo hospital works in English and 简体中文.
ZH_SHARE = 0.35
# Share of complaints written the way triage writes them, with an associated symptom (and
# sometimes a denied one): "chest pain, sweating", "胸痛2小时，伴大汗".
TRIAGE_DETAIL = 0.45
TRIAGE_DETAIL_ATYPICAL = 0.25
# Extra uniforms per visit the triage wording and the Chinese notes draw from (their own stream,
# so the English notes' draws stay as they were).
TEXT_DRAWS = 8

_GENERIC_COMPLAINTS = (
    "feeling unwell",
    "review",
    "follow up",
    "referred by GP",
    "pain",
    "not feeling right",
    "general weakness",
    "check-up",
    "unwell",
)
_SPARSE_HISTORY = (
    "see triage notes",
    "as above",
    "hx per pt",
    "nil else",
    "see referral letter",
    "",
    "Hx limited, language barrier.",
    "pt poor historian",
)
_SHARED_DURATIONS = (
    "2 days",
    "a few days",
    "1 week",
    "since yesterday",
    "several days",
    "a couple of weeks",
    "3/7",
    "some time",
    "1 day",
    "1/52",
)
_SHARED_NEGATIVES = (
    "fever",
    "chest pain",
    "vomiting",
    "shortness of breath",
    "headache",
    "rash",
    "leg swelling",
    "cough",
    "urinary symptoms",
    "weight loss",
    "diarrhoea",
    "palpitations",
    "abdominal pain",
    "recent travel",
    "sick contacts",
)
_SHARED_EXTRA = (
    "Non-smoker.",
    "Lives with family.",
    "Independent with ADLs.",
    "Smoker.",
    "Drinks socially.",
    "NKDA per pt.",
    "Works as a teacher.",
    "Retired.",
    "Lives alone.",
    "Ex-smoker.",
    "Compliant with meds.",
    "",
)
_OPENINGS = (
    "Pt c/o {cc}",
    "Patient reports {cc}",
    "Presents with {cc}",
    "{age}{sx} with {cc}",
    "Complains of {cc}",
    "C/o {cc}",
    "{age} y/o {sex} presenting with {cc}",
    "{cc}",
)
_NEG_FORMS = ("Denies {x}.", "No {x}.", "Nil {x}.", "Negative for {x}.", "No h/o {x}.")

_PMH_ABBREV = {
    "I10": "HTN",
    "E11.9": "T2DM",
    "I25.1": "IHD",
    "J45.9": "asthma",
    "J44.1": "COPD",
    "I50.9": "CCF",
    "D50.9": "iron deficiency",
    "G43.9": "migraines",
    "I21.9": "previous MI",
    "N39.0": "recurrent UTIs",
}


def free_text(
    cond: np.ndarray,
    u: np.ndarray,
    age: np.ndarray,
    female: np.ndarray,
    secondaries: list[list[int]],
    values: dict[str, np.ndarray],
    measured: dict[str, np.ndarray],
    atypical: np.ndarray,
    w: np.ndarray | None = None,
) -> list[tuple[str, str, str, str]]:
    """Chief complaint, history, examination and plan per visit.

    Atypical presentations (mild signs) also get vaguer or misleading text, as in real notes.
    ``w`` (visits x :data:`TEXT_DRAWS` uniforms) picks each visit's language and triage
    wording; without it every note is English with the plain complaint.
    """
    out: list[tuple[str, str, str, str]] = []
    hard = atypical.tolist()
    ul = u.tolist()
    wl = w.tolist() if w is not None else [[1.0] * TEXT_DRAWS] * len(ul)
    ages = np.floor(age).astype(int).tolist()
    fem = female.tolist()
    cond_l = cond.tolist()
    for i, ci in enumerate(cond_l):
        r, x = ul[i], wl[i]
        chinese = x[0] < ZH_SHARE
        texts = zh.TEXTS_ZH if chinese else TEXTS
        code = CODES[ci]
        t = texts[code]
        spec = SPECS[code]
        # chief complaint: usually typical, sometimes a confuser's or generic
        p_conf, p_gen, p_sparse, p_decoy = (
            (0.5, 0.8, 0.35, 0.8) if hard[i] else (0.25, 0.38, 0.18, 0.5)
        )
        generic = False
        if r[0] < p_conf and spec.confusers:
            ct = texts[pick(spec.confusers, r[1])]
            cc = pick(ct.complaints, r[2])
        elif r[0] < p_gen:
            cc = pick(zh.GENERIC_COMPLAINTS_ZH if chinese else _GENERIC_COMPLAINTS, r[2])
            generic = True
        else:
            cc = pick(t.complaints, r[2])
        # the complaint as typed at triage; the history retells the plain complaint
        complaint = cc
        if not generic and x[1] < (TRIAGE_DETAIL_ATYPICAL if hard[i] else TRIAGE_DETAIL):
            complaint = triage_complaint(cc, t, x, chinese=chinese)
        # history of present illness
        if r[3] < p_sparse:
            history = pick(zh.SPARSE_HISTORY_ZH if chinese else _SPARSE_HISTORY, r[4])
        else:
            pmh_names = zh.PMH_ZH if chinese else _PMH_ABBREV
            pmh = [pmh_names[CODES[s]] for s in secondaries[i] if CODES[s] in pmh_names]
            write = _history_zh if chinese else _history
            history = write(r, code, cc, ages[i], female=fem[i], p_decoy=p_decoy, pmh=pmh)
        # examination mentions measured abnormal vitals sometimes
        exam = pick(t.exam, r[19])
        if r[20] < 0.3 and measured["8310-5"][i] and values["8310-5"][i] >= 38.0:
            exam = f"{'发热。' if chinese else 'Febrile. '}{exam}"
        if r[21] < 0.05:
            if chinese:
                exam = "未查体（电话问诊）。" if r[22] < 0.5 else ""
            else:
                exam = "Not examined (telephone)." if r[22] < 0.5 else ""
        plan = pick(t.plan, r[23])
        out.append((complaint, history, exam, plan))
    return out


def triage_complaint(cc: str, t: ConditionText, x: list[float], *, chinese: bool) -> str:
    """The complaint as triage writes it: with an associated symptom of the visit's condition,
    sometimes its duration and sometimes a symptom the patient denies."""
    symptom = pick(t.symptoms, x[2])
    if chinese:
        text = cc + (pick(t.durations, x[3]) if x[4] < 0.6 else "")
        if symptom not in text:
            text += f"，{pick(zh.LEADS_ZH, x[5])}{symptom}"
        if x[6] < 0.15:
            text += f"，无{pick(t.negatives, x[7])}"
        return text
    joiner = pick((", ", ", ", " and ", ", also "), x[5])
    text = cc if symptom.lower() in cc.lower() else f"{cc}{joiner}{symptom}"
    duration = pick(t.durations, x[3])
    if x[4] < 0.3 and duration:  # a check-up has no duration ("")
        text += f" for {duration}"
    if x[6] < 0.15:
        text += f", no {pick(t.negatives, x[7])}"
    return text


def _history_zh(
    r: list[float], code: str, cc: str, age: int, *, female: bool, p_decoy: float, pmh: list[str]
) -> str:
    """A Chinese history of present illness, drawn like :func:`_history` from the same draws."""
    t, spec = zh.TEXTS_ZH[code], SPECS[code]
    durations = t.durations if r[5] < 0.5 else zh.SHARED_DURATIONS_ZH
    duration = pick(durations, (r[5] * 10) % 1)
    opening = pick(zh.OPENINGS_ZH, r[4]).format(
        cc=cc, dur=duration, age=age, sex="女" if female else "男"
    )
    parts = [opening]
    syms: list[str] = []
    for k in range(int(r[6] * 3.0)):  # 0-2 associated symptoms
        src = t.symptoms
        if spec.confusers and (r[7 + k] * 10.0) % 1.0 < p_decoy:
            src = zh.TEXTS_ZH[pick(spec.confusers, (r[7 + k] * 100.0) % 1.0)].symptoms
        s = pick(src, r[7 + k])
        if s not in syms:
            syms.append(s)
    if syms:
        parts.append(f"{pick(zh.LEADS_ZH, r[9])}{'、'.join(syms)}。")
    if r[10] < 0.7:
        neg = pick(t.negatives if r[11] < 0.35 else zh.SHARED_NEGATIVES_ZH, (r[11] * 10) % 1)
        parts.append(pick(zh.NEG_FORMS_ZH, r[12]).format(x=neg))
    if r[13] < 0.25 and spec.confusers:  # a misleading symptom from a confuser
        decoy = zh.TEXTS_ZH[pick(spec.confusers, r[14])].symptoms
        parts.append(f"另诉{pick(decoy, r[15])}。")
    if r[16] < 0.5:
        extra = pick(t.extra if r[17] < 0.4 else zh.SHARED_EXTRA_ZH, (r[17] * 10) % 1)
        if extra:
            parts.append(extra)
    if pmh and r[18] < 0.7:
        parts.append(f"既往史：{'、'.join(pmh)}。")
    return "".join(parts)


def _history(
    r: list[float], code: str, cc: str, age: int, *, female: bool, p_decoy: float, pmh: list[str]
) -> str:
    """A history of present illness built from the visit's uniform draws ``r``."""
    t, spec = TEXTS[code], SPECS[code]
    opening = pick(_OPENINGS, r[4]).format(
        cc=cc, age=age, sx="F" if female else "M", sex="female" if female else "male"
    )
    durations = t.durations if r[5] < 0.5 else _SHARED_DURATIONS
    parts = [f"{opening} for {pick(durations, (r[5] * 10) % 1)}."]
    n_sym = int(r[6] * 3.0)  # 0-2 associated symptoms
    syms: list[str] = []
    for k in range(n_sym):
        src = t.symptoms
        if spec.confusers and (r[7 + k] * 10.0) % 1.0 < p_decoy:
            src = TEXTS[pick(spec.confusers, (r[7 + k] * 100.0) % 1.0)].symptoms
        s = pick(src, r[7 + k])
        if s not in syms:
            syms.append(s)
    if syms:
        lead = pick(("Associated with", "Also reports", "Some", "With", "+"), r[9])
        parts.append(f"{lead} {' and '.join(syms)}.")
    if r[10] < 0.7:
        neg = pick(t.negatives if r[11] < 0.35 else _SHARED_NEGATIVES, (r[11] * 10) % 1)
        parts.append(pick(_NEG_FORMS, r[12]).format(x=neg))
    if r[13] < 0.25 and spec.confusers:  # a misleading symptom from a confuser
        decoy = TEXTS[pick(spec.confusers, r[14])].symptoms
        parts.append(f"Mentions {pick(decoy, r[15])}.")
    if r[16] < 0.5:
        extra = pick(t.extra if r[17] < 0.4 else _SHARED_EXTRA, (r[17] * 10) % 1)
        if extra:
            parts.append(extra)
    if pmh and r[18] < 0.7:
        parts.append(f"PMH: {', '.join(pmh)}.")
    return " ".join(parts)


_KEYBOARD_NEIGHBOURS = {
    "a": "sq",
    "e": "wr",
    "i": "uo",
    "o": "ip",
    "n": "bm",
    "r": "et",
    "s": "ad",
    "t": "ry",
    "h": "gj",
    "l": "k",
    "c": "xv",
    "d": "sf",
    "p": "o",
    "u": "yi",
    "m": "n",
}


def _typo(text: str, rng: np.random.Generator) -> str:
    if len(text) < 4:
        return text
    pos = int(rng.integers(1, len(text) - 1))
    kind = int(rng.integers(0, 4))
    if kind == 0:  # swap
        return text[:pos] + text[pos + 1] + text[pos] + text[pos + 2 :]
    if kind == 1:  # drop
        return text[:pos] + text[pos + 1 :]
    if kind == 2:  # double
        return text[:pos] + text[pos] + text[pos:]
    near = _KEYBOARD_NEIGHBOURS.get(text[pos].lower())
    if not near:
        return text[:pos] + text[pos + 1 :]
    return text[:pos] + near[int(rng.integers(0, len(near)))] + text[pos + 1 :]


def mess_text(
    texts: list[tuple[str, str, str, str]], rng: np.random.Generator
) -> list[tuple[str, str, str, str]]:
    n = len(texts)
    case = rng.random(n)
    typo_cc = rng.random(n) < 0.06
    typo_h = rng.random(n) < 0.12
    out = []
    for i, (cc, hist, exam, plan) in enumerate(texts):
        if case[i] < 0.08:
            cc = cc.upper()
        elif case[i] < 0.45:
            cc = cc.lower()
        elif case[i] < 0.8:
            cc = cc[:1].upper() + cc[1:]
        if typo_cc[i]:
            cc = _typo(cc, rng)
        if typo_h[i]:
            hist = _typo(hist, rng)
            if rng.random() < 0.3:
                hist = _typo(hist, rng)
        if case[i] > 0.97:
            hist = hist.lower()
        out.append((cc, hist, exam, plan))
    return out
