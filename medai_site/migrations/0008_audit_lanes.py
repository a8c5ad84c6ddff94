"""Audit chain lanes (issues 15 and 18): each record belongs to one of ``MEDAI_AUDIT_LANES``
independent keyed chains (``lane``), so audited transactions take one lane's lock instead of one
lock for every writer; chain version 4 hashes the lane too. An index on (lane, id) serves the
writer's read of its lane's head.

Every existing record becomes lane 0 and keeps its hash (versions 1-3 do not cover the lane):
the chain written before lanes is lane 0's prefix. Adding a column with a constant default
rewrites no row on PostgreSQL, so the append-only triggers (0004, 0005) do not fire and stay;
the app role's table grants (``db_grant_app_role``) cover the new column. SQLite rebuilds the
table, which drops its triggers, so they are put back.
"""

from django.db import migrations, models

SQLITE_APPEND_ONLY = [
    """CREATE TRIGGER IF NOT EXISTS medai_audit_no_update BEFORE UPDATE ON medai_site_auditevent
       BEGIN SELECT RAISE(ABORT, 'medai_site_auditevent is append-only: UPDATE refused'); END;""",
    """CREATE TRIGGER IF NOT EXISTS medai_audit_no_delete BEFORE DELETE ON medai_site_auditevent
       BEGIN SELECT RAISE(ABORT, 'medai_site_auditevent is append-only: DELETE refused'); END;""",
]


def install(apps, schema_editor):
    if schema_editor.connection.vendor == "sqlite":
        for sql in SQLITE_APPEND_ONLY:
            schema_editor.execute(sql)


class Migration(migrations.Migration):
    dependencies = [
        ("medai_site", "0007_audit_list_patient_ids"),
    ]

    operations = [
        migrations.AddField(
            model_name="auditevent",
            name="lane",
            field=models.PositiveSmallIntegerField(default=0, editable=False),
        ),
        migrations.AlterField(
            model_name="auditevent",
            name="chain_version",
            field=models.PositiveSmallIntegerField(default=4, editable=False),
        ),
        migrations.AddIndex(
            model_name="auditevent",
            index=models.Index(fields=["lane", "id"], name="medai_audit_lane_id"),
        ),
        migrations.RunPython(install, migrations.RunPython.noop),
    ]
