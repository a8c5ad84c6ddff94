"""Audit list records (issue 12): one record per list view with the ids of every patient it
showed (``patient_ids``, hashed with the record from chain version 3 on), and a GIN index so the
per-patient report finds them on PostgreSQL.

Adding a column with a default rewrites no row on PostgreSQL (the append-only triggers do not
fire); SQLite rebuilds the table, which drops its triggers, so they are put back.
"""

from django.db import migrations, models

POSTGRES_INDEX = (
    "CREATE INDEX IF NOT EXISTS medai_audit_patient_ids ON medai_site_auditevent "
    "USING gin (patient_ids jsonb_path_ops) WHERE patient_ids <> '[]'::jsonb"
)
POSTGRES_DROP_INDEX = "DROP INDEX IF EXISTS medai_audit_patient_ids"
SQLITE_APPEND_ONLY = [
    """CREATE TRIGGER IF NOT EXISTS medai_audit_no_update BEFORE UPDATE ON medai_site_auditevent
       BEGIN SELECT RAISE(ABORT, 'medai_site_auditevent is append-only: UPDATE refused'); END;""",
    """CREATE TRIGGER IF NOT EXISTS medai_audit_no_delete BEFORE DELETE ON medai_site_auditevent
       BEGIN SELECT RAISE(ABORT, 'medai_site_auditevent is append-only: DELETE refused'); END;""",
]


def install(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    statements = {"postgresql": [POSTGRES_INDEX], "sqlite": SQLITE_APPEND_ONLY}.get(vendor, [])
    for sql in statements:
        schema_editor.execute(sql)


def remove(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(POSTGRES_DROP_INDEX)


class Migration(migrations.Migration):
    dependencies = [
        ("medai_site", "0006_auditevent_import_interface"),
    ]

    operations = [
        migrations.AddField(
            model_name="auditevent",
            name="patient_ids",
            field=models.JSONField(blank=True, default=list, editable=False),
        ),
        migrations.AlterField(
            model_name="auditevent",
            name="action",
            field=models.CharField(
                choices=[
                    ("view", "View"),
                    ("search_hit", "Search Hit"),
                    ("create", "Create"),
                    ("update", "Update"),
                    ("export", "Export"),
                    ("advice", "Advice"),
                    ("denied", "Denied"),
                    ("delete", "Delete"),
                    ("list", "List"),
                ],
                max_length=16,
            ),
        ),
        migrations.AlterField(
            model_name="auditevent",
            name="chain_version",
            field=models.PositiveSmallIntegerField(default=3, editable=False),
        ),
        migrations.RunPython(install, remove),
    ]
