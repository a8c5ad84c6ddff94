"""Patient timelines: MEDS events, forecast labels, count baseline, pretrained sequence models.

The engine API the Django side adapts (thin adapters; no Django here):

* data -- ``events.read_events(path | frame)`` / ``read_labels`` validate MEDS tables with the
  ``meds`` schemas; ``events.write_events(frame, path)`` / ``write_labels`` write MEDS Parquet (the
  export command); ``events.Timelines.from_frame(events)`` holds them; ``Timelines.histories``
  is the one visibility rule (static facts + events strictly before ``prediction_time``).
* inputs -- ``inputs.load_inputs(events, labels, cv, algorithms)`` reads and checks both (the
  first step of ``train_forecast``; the command line calls it before importing scikit-learn and
  torch); ``inputs.FORECAST_ALGORITHMS`` names the forecast algorithms.
* labels -- ``labels.TaskDefinition(name, codes, horizon_days, min_history_days, per_subject)``
  and ``labels.build_labels(timelines, task, seed=)`` -> MEDS labels frame.
* training -- ``forecast.train_forecast(events, labels, ForecastOptions(...), progress=)`` ->
  ``ForecastResult(model, report, out_of_fold, labels)``: grouped CV of the count baseline and the
  sequence models, CI gate, compression table, refit of the selected model;
  ``forecast.fit_forecast_model(events, labels, algorithm, options)`` refits a chosen algorithm
  without CV (nightly fine-tune, timing benchmark).
* incremental fine-tuning -- ``ForecastModel.weights`` (``weights.TimelineWeights``: pretrained
  encoders per architecture and the served net's fine-tuned weights, numpy with checksums);
  ``incremental.finetune_incremental(events, labels, pretrained=, champion=, options=, epochs=)``
  -> (model, log), raising ``incremental.IncrementalRefused`` when a full refit is needed.
* monitoring -- ``outcomes.forecast_outcomes(timelines, task, prediction_time, now)``: which
  forecasts' outcomes are known (positive within the horizon, negative after it, else pending).
* artifacts -- ``artifacts.save_forecast_model(model, path)`` -> ``ArtifactInfo(sha256, ...)``;
  ``artifacts.load_forecast_model(path, sha256)`` (verified, cached).
* serving -- ``ForecastModel.forecast(subject_events_frame, prediction_time)`` -> ``Forecast``
  (``probability``, ``risk_interval``, ``drivers``: the 20 most recent visits with their events
  and contribution, plus one "earlier_history" block for older visits,
  sorted by time); ``ForecastModel.probabilities(timelines, histories)`` for batches.
* similar patients and phenotypes -- ``ForecastModel.embedder.embed(timelines, histories)``
  (population), ``serving.embed_one(embedder, subject_events_frame, prediction_time)`` (query),
  ``embeddings.PatientIndex(subject_ids, vectors).nearest(vector, k, exclude=)``,
  ``embeddings.phenotype_clusters(vectors, subject_ids, timelines, histories, n_clusters=,
  outcomes=)``.
* test and benchmark data -- ``synthetic.generate_events(n_subjects, seed=)``.
"""
