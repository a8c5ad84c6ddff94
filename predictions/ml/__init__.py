"""MedAI's model engine: pure Python (numpy, pandas, scikit-learn, PyTorch), no Django.

Modules: ``dataset`` (records -> clean frame + cleaning report), ``features`` (one featuriser for
training and serving), ``split`` (patient-grouped stratified folds), ``algorithms`` (six learners),
``calibration``, ``evaluate`` (metrics, CIs, subgroups), ``explain`` (contributions that add up),
``pipeline`` (``train``, ``TrainedModel.predict_one``), ``artifacts`` (verified save/load), ``cli``,
``timeline`` (MEDS timelines, forecasts, sequence models), ``export`` (ONNX, int8 quantisation).
"""
