"""MedAI's model engine: pure Python (numpy, pandas, scikit-learn, PyTorch), no Django.

Modules: ``dataset`` (records -> clean frame + cleaning report), ``features`` (one featuriser for
training and serving), ``text`` (English/Chinese tokens, negation, clinical lexicons),
``encoder`` (optional offline sentence encoder), ``neural_text`` (CNN and GRU text models),
``split`` (patient-grouped stratified folds), ``algorithms`` (six learners and two opt-in neural
text models),
``calibration``, ``evaluate`` (metrics, CIs, subgroups), ``explain`` (contributions that add up),
``pipeline`` (``train``, ``TrainedModel.predict_one``), ``artifacts`` (verified save/load), ``cli``
(with ``names``: the choices it parses before importing the engine),
``timeline`` (MEDS timelines, forecasts, sequence models), ``export`` (ONNX, int8 quantisation).
"""
