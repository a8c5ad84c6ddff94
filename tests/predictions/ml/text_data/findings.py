"""Findings in English and Chinese, as doctors and patients write them (noun phrases that read
as well after "no"/"无" as on their own). Each finding has several phrasings per language, so no
single keyword stands for it."""

from __future__ import annotations

FINDINGS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # general
    "fever": (
        ("fever", "a high temperature", "temperatures up to 39", "feeling feverish", "pyrexia"),
        ("发热", "发烧", "体温升高", "高热", "体温39度左右"),
    ),
    "low_fever": (
        ("a low-grade fever", "mild fever", "a slight temperature"),
        ("低热", "低烧", "体温37.8度左右"),
    ),
    "chills": (("chills", "rigors", "shaking chills", "shivering"), ("寒战", "畏寒", "发冷打颤")),
    "fatigue": (
        ("tiredness", "fatigue", "feeling worn out", "low energy", "lethargy"),
        ("乏力", "疲倦", "全身没劲", "精神差", "容易疲劳"),
    ),
    "myalgia": (
        ("muscle aches", "aching all over", "body aches", "myalgia"),
        ("全身酸痛", "肌肉酸痛", "浑身疼", "四肢酸痛"),
    ),
    "headache": (("headache", "a dull headache", "head pain"), ("头痛", "头疼", "头部胀痛")),
    "dizziness": (("dizziness", "light-headedness", "feeling faint"), ("头晕", "头昏", "眼前发黑")),
    "sweating": (
        ("sweating", "cold sweats", "diaphoresis", "being drenched in sweat"),
        ("出汗", "大汗", "冷汗", "大汗淋漓"),
    ),
    "nausea": (("nausea", "feeling sick", "queasiness"), ("恶心", "想吐", "反胃")),
    "vomiting": (
        ("vomiting", "being sick several times", "throwing up"),
        ("呕吐", "吐了几次", "呕吐胃内容物"),
    ),
    "weight_loss": (
        ("weight loss", "losing weight without trying", "clothes getting loose"),
        ("体重下降", "消瘦", "体重减轻"),
    ),
    "anorexia": (
        ("loss of appetite", "not wanting to eat", "poor appetite"),
        ("食欲下降", "不想吃东西", "纳差"),
    ),
    # respiratory
    "runny_nose": (
        ("a runny nose", "nasal discharge", "rhinorrhoea", "a streaming nose"),
        ("流涕", "流鼻涕", "清涕"),
    ),
    "blocked_nose": (
        ("a blocked nose", "nasal congestion", "a stuffy nose"),
        ("鼻塞", "鼻子不通气"),
    ),
    "sneezing": (
        ("sneezing", "bouts of sneezing", "frequent sneezes"),
        ("打喷嚏", "喷嚏", "连续打喷嚏"),
    ),
    "sore_throat": (
        ("a sore throat", "a scratchy throat", "pain on swallowing"),
        ("咽痛", "嗓子疼", "咽喉疼痛", "吞咽时疼痛"),
    ),
    "dry_cough": (
        ("a dry cough", "a tickly cough", "a non-productive cough"),
        ("干咳", "咳嗽无痰", "刺激性干咳"),
    ),
    "productive_cough": (
        (
            "a cough with yellow sputum",
            "a productive cough",
            "coughing up green phlegm",
            "purulent sputum",
        ),
        ("咳嗽咳黄痰", "咳痰", "咳黄脓痰", "咳嗽伴绿色痰"),
    ),
    "more_sputum": (
        ("more sputum than usual", "increased sputum", "thicker phlegm than normal"),
        ("痰量增多", "痰比平时多", "痰液变稠"),
    ),
    "dyspnoea": (
        ("shortness of breath", "breathlessness", "difficulty breathing", "being short of breath"),
        ("气促", "呼吸困难", "气短", "喘不上气"),
    ),
    "exertional_dyspnoea": (
        (
            "breathlessness on exertion",
            "getting out of breath on stairs",
            "shortness of breath when walking",
        ),
        ("活动后气促", "爬楼梯后气短", "走路就喘"),
    ),
    "wheeze": (
        ("wheezing", "a wheeze", "a whistling chest"),
        ("喘息", "哮鸣", "胸口有哨音", "喘鸣"),
    ),
    "chest_tightness": (
        ("chest tightness", "a tight chest", "tightness across the chest"),
        ("胸闷", "胸口发紧", "胸部紧缩感"),
    ),
    "night_cough": (
        ("coughing at night", "a night-time cough", "cough waking them at night"),
        ("夜间咳嗽", "晚上咳得厉害", "夜咳"),
    ),
    "pleuritic_pain": (
        (
            "chest pain on breathing in",
            "pleuritic chest pain",
            "sharp pain when taking a deep breath",
        ),
        ("吸气时胸痛", "深呼吸时胸痛", "胸膜性胸痛"),
    ),
    "itchy_eyes": (
        ("itchy eyes", "watery eyes", "itchy watery eyes"),
        ("眼睛痒", "流泪", "眼痒流泪"),
    ),
    # cardiac
    "crushing_chest_pain": (
        (
            "crushing chest pain",
            "central chest pressure",
            "heavy chest pain",
            "pain like a weight on the chest",
        ),
        ("压榨样胸痛", "胸骨后压迫感", "心前区闷痛", "胸口像压了石头"),
    ),
    "arm_radiation": (
        (
            "pain radiating to the left arm",
            "pain spreading to the jaw",
            "pain going down the left arm",
        ),
        ("疼痛放射至左臂", "向左肩放射", "放射到下颌"),
    ),
    "exertional_chest_pain": (
        (
            "chest tightness on exertion",
            "chest pain walking uphill",
            "chest discomfort when climbing stairs",
        ),
        ("活动后胸痛", "爬坡时胸闷", "劳累后胸痛"),
    ),
    "rest_relief": (
        ("relief with rest", "settling within minutes of rest", "easing when they stop walking"),
        ("休息后缓解", "停下来几分钟就好", "休息数分钟可缓解"),
    ),
    "rest_pain": (
        ("pain at rest", "chest pain while resting", "pain that came on at rest"),
        ("静息时胸痛", "休息时也痛", "安静状态下发作"),
    ),
    "palpitations": (
        ("palpitations", "a racing heart", "a pounding heartbeat"),
        ("心悸", "心慌", "心跳快"),
    ),
    "orthopnoea": (
        ("breathlessness lying flat", "needing three pillows to sleep", "orthopnoea"),
        ("端坐呼吸", "平卧时气促", "不能平躺"),
    ),
    "pnd": (
        (
            "waking up gasping for breath",
            "paroxysmal nocturnal dyspnoea",
            "waking breathless at night",
        ),
        ("夜间憋醒", "夜间阵发性呼吸困难", "夜里喘醒"),
    ),
    "ankle_swelling": (
        ("ankle swelling", "swollen legs", "pitting oedema of both ankles"),
        ("双下肢水肿", "脚踝肿", "下肢凹陷性水肿"),
    ),
    "weight_gain": (
        ("weight gain of several kilos", "rapid weight gain", "putting on weight quickly"),
        ("体重增加", "体重短期内增加", "近期长胖几公斤"),
    ),
    # gastrointestinal
    "heartburn": (
        (
            "heartburn",
            "a burning feeling behind the breastbone",
            "burning in the chest after meals",
        ),
        ("烧心", "胸骨后烧灼感", "饭后胸口烧"),
    ),
    "regurgitation": (
        ("acid regurgitation", "a sour taste in the mouth", "acid coming up"),
        ("反酸", "嘴里发酸", "酸水上涌"),
    ),
    "worse_lying": (
        ("symptoms worse lying down", "worse when bending over", "worse at night in bed"),
        ("平躺后加重", "弯腰时加重", "夜间躺下加重"),
    ),
    "epigastric_pain": (
        ("epigastric pain", "a gnawing pain in the upper stomach", "burning upper abdominal pain"),
        ("上腹痛", "胃痛", "上腹部烧灼痛", "心窝部隐痛"),
    ),
    "food_relation": (
        (
            "pain eased by eating",
            "pain a few hours after meals",
            "pain waking them at night relieved by food",
        ),
        ("进食后缓解", "饭后两三小时疼", "空腹时痛"),
    ),
    "nsaid_use": (
        ("regular ibuprofen use", "taking painkillers for arthritis", "daily NSAIDs"),
        ("长期服用布洛芬", "常吃止痛药", "服用非甾体抗炎药"),
    ),
    "black_stool": (
        ("black stools", "dark tarry stools", "melaena"),
        ("黑便", "大便发黑", "柏油样便"),
    ),
    "diarrhoea": (
        ("diarrhoea", "watery stools", "loose stools several times a day"),
        ("腹泻", "拉肚子", "水样便", "一天拉好几次稀便"),
    ),
    "cramps": (
        ("abdominal cramps", "crampy tummy pain", "colicky abdominal pain"),
        ("腹部绞痛", "阵发性腹痛", "肚子一阵阵疼"),
    ),
    "bad_food": (
        (
            "eating at a street stall the day before",
            "a takeaway meal the night before",
            "others who ate the same food being ill",
        ),
        ("前一天吃了路边摊", "进食不洁食物后", "同餐者也有类似症状"),
    ),
    "periumbilical_pain": (
        (
            "pain that started around the navel",
            "central abdominal pain",
            "pain around the belly button",
        ),
        ("脐周痛", "肚脐周围疼痛", "上腹及脐周隐痛"),
    ),
    "rlq_pain": (
        (
            "pain moving to the right lower abdomen",
            "right iliac fossa pain",
            "pain in the lower right side of the abdomen",
        ),
        ("转移性右下腹痛", "右下腹痛", "疼痛转移至右下腹"),
    ),
    "rebound": (
        (
            "rebound tenderness",
            "pain when the abdomen is pressed and released",
            "pain worse on walking or coughing",
        ),
        ("反跳痛", "麦氏点压痛", "走路咳嗽时腹痛加重"),
    ),
    "ruq_pain": (
        ("right upper abdominal pain", "pain under the right ribs", "right upper quadrant pain"),
        ("右上腹痛", "右肋下疼痛", "右上腹绞痛"),
    ),
    "fatty_meal": (
        (
            "pain after a fatty meal",
            "pain after eating fried food",
            "pain starting after a heavy dinner",
        ),
        ("进食油腻后疼痛", "吃油炸食物后发作", "饱餐后出现"),
    ),
    "shoulder_radiation": (
        (
            "pain radiating to the right shoulder",
            "pain going through to the right shoulder blade",
            "pain spreading to the back",
        ),
        ("放射至右肩", "向右肩背部放射", "牵扯到右后背"),
    ),
    "jaundice": (
        ("yellowing of the eyes", "jaundice", "yellow skin"),
        ("皮肤发黄", "巩膜黄染", "眼睛发黄"),
    ),
    "blood_in_stool": (("blood in the stool", "bloody diarrhoea"), ("便血", "大便带血")),
    # urinary / renal
    "dysuria": (
        ("burning on passing urine", "pain when urinating", "stinging when peeing", "dysuria"),
        ("尿痛", "排尿时烧灼感", "小便刺痛"),
    ),
    "frequency": (
        ("going to the toilet frequently", "urinary frequency", "passing urine every hour"),
        ("尿频", "小便次数多", "一小时要上好几次厕所"),
    ),
    "urgency": (
        ("urgency", "a sudden need to pass urine", "barely making it to the toilet"),
        ("尿急", "憋不住尿", "突然很想小便"),
    ),
    "suprapubic_pain": (
        ("lower abdominal discomfort", "suprapubic pain", "aching above the pubic bone"),
        ("下腹不适", "耻骨上疼痛", "小肚子坠痛"),
    ),
    "cloudy_urine": (
        ("cloudy urine", "smelly urine", "foul-smelling urine"),
        ("尿液浑浊", "尿有异味", "小便浑浊有臭味"),
    ),
    "flank_pain": (
        ("flank pain", "loin pain", "pain in the side of the back", "back pain over the kidney"),
        ("腰痛", "腰部疼痛", "肾区疼痛", "一侧腰背痛"),
    ),
    "renal_angle": (
        (
            "tenderness over the kidney",
            "renal angle tenderness",
            "pain when the kidney area is tapped",
        ),
        ("肾区叩痛", "肋脊角压痛", "叩击腰部疼痛"),
    ),
    "colicky_flank": (
        (
            "severe colicky flank pain",
            "waves of excruciating loin pain",
            "pain so bad they cannot keep still",
        ),
        ("剧烈绞痛", "阵发性剧烈腰痛", "疼得坐立不安"),
    ),
    "groin_radiation": (
        (
            "pain radiating to the groin",
            "pain moving down into the groin",
            "pain spreading to the testicle",
        ),
        ("向腹股沟放射", "疼痛放射至会阴部", "牵涉到大腿根部"),
    ),
    "haematuria": (
        ("blood in the urine", "pink urine", "haematuria"),
        ("血尿", "尿色发红", "肉眼血尿"),
    ),
    # neurological
    "unilateral_headache": (
        (
            "a one-sided throbbing headache",
            "pulsating pain on one side of the head",
            "a pounding headache behind one eye",
        ),
        ("一侧搏动性头痛", "偏头痛发作", "单侧跳痛"),
    ),
    "photophobia": (
        ("sensitivity to light", "light hurting their eyes", "photophobia"),
        ("畏光", "怕光", "见光头痛加重"),
    ),
    "phonophobia": (
        ("sensitivity to noise", "noise making it worse"),
        ("怕吵", "畏声", "声音大时加重"),
    ),
    "aura": (
        ("zigzag lines before the headache", "flashing lights before the pain", "a visual aura"),
        ("头痛前眼前闪光", "视觉先兆", "发作前看到锯齿样亮线"),
    ),
    "band_headache": (
        ("a band-like headache", "pressure across the forehead", "a tight feeling around the head"),
        ("头部紧箍感", "双侧额部压迫性疼痛", "头像被箍住一样"),
    ),
    "stress": (
        ("stress at work", "long hours at a computer", "poor sleep"),
        ("工作压力大", "长时间看电脑", "睡眠不好"),
    ),
    "neck_tension": (
        ("tight neck muscles", "neck and shoulder stiffness", "tension in the shoulders"),
        ("颈肩部僵硬", "脖子发紧", "肩颈酸胀"),
    ),
    "weakness_one_side": (
        ("sudden weakness of one arm and leg", "right-sided weakness", "left arm and leg weakness"),
        ("一侧肢体无力", "右侧肢体无力", "突发左侧手脚无力"),
    ),
    "slurred_speech": (
        ("slurred speech", "difficulty finding words", "speech suddenly garbled"),
        ("言语不清", "说话含糊", "口齿不清"),
    ),
    "facial_droop": (
        ("facial droop", "drooping of one side of the face", "a crooked smile"),
        ("口角歪斜", "一侧面部下垂", "嘴巴歪"),
    ),
    "sudden_onset": (
        ("sudden onset", "symptoms that came on within minutes", "starting abruptly this morning"),
        ("突然发病", "几分钟内出现", "今晨突发"),
    ),
    "blurred_vision": (("blurred vision", "vision going blurry"), ("视物模糊", "看东西模糊")),
    # endocrine / haematology
    "thirst": (
        ("excessive thirst", "always being thirsty", "drinking much more water"),
        ("口渴多饮", "总是口渴", "喝水明显增多"),
    ),
    "polyuria": (
        ("passing lots of urine", "getting up at night to pass urine", "large volumes of urine"),
        ("多尿", "夜尿增多", "尿量多"),
    ),
    "slow_healing": (
        ("cuts slow to heal", "recurrent skin infections", "tingling in the feet"),
        ("伤口愈合慢", "反复皮肤感染", "脚底发麻"),
    ),
    "heat_intolerance": (
        ("heat intolerance", "always feeling hot", "sweating more than others"),
        ("怕热", "多汗怕热", "总觉得热"),
    ),
    "tremor": (
        ("a fine tremor", "shaky hands", "trembling fingers"),
        ("手抖", "双手细颤", "手指震颤"),
    ),
    "anxiety": (
        ("feeling anxious and irritable", "restlessness", "irritability"),
        ("烦躁易怒", "焦虑", "心烦"),
    ),
    "goitre": (
        ("a swelling at the front of the neck", "an enlarged thyroid", "bulging eyes"),
        ("颈部肿大", "甲状腺肿大", "眼球突出"),
    ),
    "pallor": (("pale skin", "looking pale", "pallor"), ("面色苍白", "脸色发白", "皮肤苍白")),
    "heavy_periods": (
        ("heavy periods", "heavy menstrual bleeding", "flooding during periods"),
        ("月经量多", "经量增多", "经期出血多"),
    ),
    "brittle_nails": (
        ("brittle nails", "hair thinning", "cravings for ice"),
        ("指甲易碎", "脱发", "想吃冰块"),
    ),
    "cold_hands": (("cold hands and feet", "feeling cold all the time"), ("手脚冰凉", "怕冷")),
    # vascular
    "calf_swelling": (
        ("swelling of one calf", "a swollen left leg", "one leg bigger than the other"),
        ("单侧小腿肿胀", "左下肢肿胀", "一条腿比另一条粗"),
    ),
    "calf_pain": (
        ("calf pain", "pain in the lower leg on walking", "tenderness behind the knee"),
        ("小腿疼痛", "腘窝压痛", "走路时腿疼"),
    ),
    "leg_warmth": (
        ("a warm, red lower leg", "redness of the lower leg", "the leg feeling warm"),
        ("小腿皮温升高", "小腿发红发热", "下肢皮肤发红"),
    ),
    "immobility": (
        ("a long-haul flight last week", "recent knee surgery", "being bed-bound after a fracture"),
        ("上周长途飞行", "近期膝关节手术", "骨折后长期卧床"),
    ),
    # allergy
    "seasonal": (
        ("symptoms every spring", "worse around pollen and cats", "seasonal symptoms"),
        ("每年春天发作", "接触花粉或猫后加重", "季节性发作"),
    ),
    "itchy_nose": (
        ("an itchy nose", "itching of the palate", "an itchy nose and throat"),
        ("鼻痒", "上腭发痒", "鼻子和喉咙痒"),
    ),
    "allergen_trigger": (
        ("triggered by dust or cold air", "worse with exercise", "attacks after contact with cats"),
        ("接触冷空气或灰尘后诱发", "运动后加重", "接触猫后发作"),
    ),
    "smoker": (
        (
            "a 40 pack-year smoking history",
            "a long-term smoker",
            "smoking a pack a day for decades",
        ),
        ("吸烟史40年", "长期吸烟", "每天一包烟几十年"),
    ),
    "chronic_lung": (
        ("known COPD", "using inhalers for years", "emphysema on previous scans"),
        ("慢阻肺病史", "多年使用吸入剂", "既往肺气肿"),
    ),
}
