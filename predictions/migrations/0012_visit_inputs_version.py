"""Per-visit inputs versions, maintained by triggers (see ``VisitInputsVersion``).

Statement-level triggers (with transition tables) for inserts and deletes, so a bulk import of
thousands of visits or observations costs one statement each; row-level triggers for updates,
filtered by ``WHEN`` to the columns the featurisers read (a visit closed, or a patient renamed,
keeps its version).
"""

from django.db import migrations, models

SEQ = "predictions_visit_inputs_seq"
TABLE = "predictions_visitinputsversion"

FORWARD = f"""
CREATE SEQUENCE {SEQ};

-- A new value for each visit named (one statement; ascending ids, so two writers lock their
-- visits' rows in the same order and cannot deadlock each other here).
CREATE FUNCTION predictions_visit_inputs_bump(ids bigint[]) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO {TABLE} (visit_id, version)
    SELECT id, nextval('{SEQ}')
      FROM (SELECT DISTINCT id FROM unnest(ids) AS id WHERE id IS NOT NULL ORDER BY id) AS named
    ON CONFLICT (visit_id) DO UPDATE SET version = EXCLUDED.version;
$$;

CREATE FUNCTION predictions_visit_inputs_on_visit_insert() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM predictions_visit_inputs_bump(ARRAY(SELECT id FROM new_rows));
    RETURN NULL;
END $$;

CREATE FUNCTION predictions_visit_inputs_on_visit_delete() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM {TABLE} WHERE visit_id IN (SELECT id FROM old_rows);
    RETURN NULL;
END $$;

CREATE FUNCTION predictions_visit_inputs_on_visit_update() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM predictions_visit_inputs_bump(ARRAY[NEW.id]);
    RETURN NULL;
END $$;

CREATE FUNCTION predictions_visit_inputs_on_observation_new() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM predictions_visit_inputs_bump(ARRAY(
        SELECT n.visit_id FROM new_rows n JOIN visits_visit v ON v.id = n.visit_id));
    RETURN NULL;
END $$;

CREATE FUNCTION predictions_visit_inputs_on_observation_old() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- Only visits that still exist: a visit's deletion removes its observations first.
    PERFORM predictions_visit_inputs_bump(ARRAY(
        SELECT o.visit_id FROM old_rows o JOIN visits_visit v ON v.id = o.visit_id));
    RETURN NULL;
END $$;

CREATE FUNCTION predictions_visit_inputs_on_patient_update() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM predictions_visit_inputs_bump(ARRAY(
        SELECT id FROM visits_visit WHERE patient_id = NEW.id));
    RETURN NULL;
END $$;

CREATE TRIGGER predictions_inputs_visit_insert AFTER INSERT ON visits_visit
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION predictions_visit_inputs_on_visit_insert();
CREATE TRIGGER predictions_inputs_visit_delete AFTER DELETE ON visits_visit
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION predictions_visit_inputs_on_visit_delete();
CREATE TRIGGER predictions_inputs_visit_update AFTER UPDATE ON visits_visit
    FOR EACH ROW WHEN (
        OLD.age_years IS DISTINCT FROM NEW.age_years
        OR OLD.visit_type IS DISTINCT FROM NEW.visit_type
        OR OLD.chief_complaint IS DISTINCT FROM NEW.chief_complaint
        OR OLD.history_present_illness IS DISTINCT FROM NEW.history_present_illness
        OR OLD.patient_id IS DISTINCT FROM NEW.patient_id
        OR OLD.id IS DISTINCT FROM NEW.id)
    EXECUTE FUNCTION predictions_visit_inputs_on_visit_update();
CREATE TRIGGER predictions_inputs_observation_insert AFTER INSERT ON visits_observation
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION predictions_visit_inputs_on_observation_new();
CREATE TRIGGER predictions_inputs_observation_update_new AFTER UPDATE ON visits_observation
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION predictions_visit_inputs_on_observation_new();
CREATE TRIGGER predictions_inputs_observation_update_old AFTER UPDATE ON visits_observation
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION predictions_visit_inputs_on_observation_old();
CREATE TRIGGER predictions_inputs_observation_delete AFTER DELETE ON visits_observation
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION predictions_visit_inputs_on_observation_old();
CREATE TRIGGER predictions_inputs_patient_update AFTER UPDATE ON patients_patient
    FOR EACH ROW WHEN (OLD.sex IS DISTINCT FROM NEW.sex)
    EXECUTE FUNCTION predictions_visit_inputs_on_patient_update();

INSERT INTO {TABLE} (visit_id, version)
SELECT id, nextval('{SEQ}') FROM visits_visit ORDER BY id;
"""

BACKWARD = f"""
DROP TRIGGER IF EXISTS predictions_inputs_visit_insert ON visits_visit;
DROP TRIGGER IF EXISTS predictions_inputs_visit_delete ON visits_visit;
DROP TRIGGER IF EXISTS predictions_inputs_visit_update ON visits_visit;
DROP TRIGGER IF EXISTS predictions_inputs_observation_insert ON visits_observation;
DROP TRIGGER IF EXISTS predictions_inputs_observation_update_new ON visits_observation;
DROP TRIGGER IF EXISTS predictions_inputs_observation_update_old ON visits_observation;
DROP TRIGGER IF EXISTS predictions_inputs_observation_delete ON visits_observation;
DROP TRIGGER IF EXISTS predictions_inputs_patient_update ON patients_patient;
DROP FUNCTION IF EXISTS predictions_visit_inputs_on_visit_insert();
DROP FUNCTION IF EXISTS predictions_visit_inputs_on_visit_delete();
DROP FUNCTION IF EXISTS predictions_visit_inputs_on_visit_update();
DROP FUNCTION IF EXISTS predictions_visit_inputs_on_observation_new();
DROP FUNCTION IF EXISTS predictions_visit_inputs_on_observation_old();
DROP FUNCTION IF EXISTS predictions_visit_inputs_on_patient_update();
DROP FUNCTION IF EXISTS predictions_visit_inputs_bump(bigint[]);
DROP SEQUENCE IF EXISTS {SEQ};
"""


def forward(apps, schema_editor):
    # The triggers are PostgreSQL's; batch re-scoring needs PostgreSQL (the local SQLite
    # profile has no sequence or transition tables, and scores nothing in batch).
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FORWARD)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(BACKWARD)


class Migration(migrations.Migration):
    dependencies = [
        ("predictions", "0011_batch_scoring"),
        ("visits", "0005_visit_medications"),
        ("patients", "0004_alter_allergy_options"),
    ]

    operations = [
        migrations.CreateModel(
            name="VisitInputsVersion",
            fields=[
                ("visit_id", models.BigIntegerField(primary_key=True, serialize=False)),
                ("version", models.BigIntegerField()),
            ],
        ),
        migrations.RunPython(forward, backward),
    ]
