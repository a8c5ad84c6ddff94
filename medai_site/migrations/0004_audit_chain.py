"""Hash-chained, append-only audit trail: new columns, and triggers that refuse UPDATE/DELETE."""

import django.utils.timezone
from django.db import migrations, models

POSTGRES_APPEND_ONLY = """
CREATE OR REPLACE FUNCTION medai_audit_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION USING MESSAGE = 'medai_site_auditevent is append-only: ' || TG_OP || ' refused';
END;
$$ LANGUAGE plpgsql;
DROP TRIGGER IF EXISTS medai_audit_append_only ON medai_site_auditevent;
CREATE TRIGGER medai_audit_append_only BEFORE UPDATE OR DELETE ON medai_site_auditevent
    FOR EACH ROW EXECUTE FUNCTION medai_audit_append_only();
"""
POSTGRES_DROP = """
DROP TRIGGER IF EXISTS medai_audit_append_only ON medai_site_auditevent;
DROP FUNCTION IF EXISTS medai_audit_append_only();
"""
SQLITE_APPEND_ONLY = [
    """CREATE TRIGGER IF NOT EXISTS medai_audit_no_update BEFORE UPDATE ON medai_site_auditevent
       BEGIN SELECT RAISE(ABORT, 'medai_site_auditevent is append-only: UPDATE refused'); END;""",
    """CREATE TRIGGER IF NOT EXISTS medai_audit_no_delete BEFORE DELETE ON medai_site_auditevent
       BEGIN SELECT RAISE(ABORT, 'medai_site_auditevent is append-only: DELETE refused'); END;""",
]
SQLITE_DROP = ["DROP TRIGGER IF EXISTS medai_audit_no_update;", "DROP TRIGGER IF EXISTS medai_audit_no_delete;"]


def chain_existing(apps, schema_editor):
    """Give records written before this migration their place in the chain."""
    from medai_site.audit import GENESIS, content_hash

    AuditEvent = apps.get_model("medai_site", "AuditEvent")
    prev = GENESIS
    for event in AuditEvent.objects.order_by("pk").iterator():
        event.prev_hash = prev
        event.hash = content_hash(prev, event)
        event.save(update_fields=["prev_hash", "hash"])
        prev = event.hash


def install_triggers(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    statements = [POSTGRES_APPEND_ONLY] if vendor == "postgresql" else SQLITE_APPEND_ONLY if vendor == "sqlite" else []
    for sql in statements:
        schema_editor.execute(sql)


def remove_triggers(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    statements = [POSTGRES_DROP] if vendor == "postgresql" else SQLITE_DROP if vendor == "sqlite" else []
    for sql in statements:
        schema_editor.execute(sql)


class Migration(migrations.Migration):
    dependencies = [("medai_site", "0003_apitoken")]

    operations = [
        migrations.AlterField(
            model_name="auditevent", name="at",
            field=models.DateTimeField(db_index=True, default=django.utils.timezone.now),
        ),
        migrations.AddField(
            model_name="auditevent", name="prev_hash",
            field=models.CharField(default="", editable=False, max_length=64), preserve_default=False,
        ),
        migrations.AddField(
            model_name="auditevent", name="hash",
            field=models.CharField(default="", editable=False, max_length=64), preserve_default=False,
        ),
        migrations.RunPython(chain_existing, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="auditevent", name="hash",
            field=models.CharField(editable=False, max_length=64, unique=True),
        ),
        migrations.RunPython(install_triggers, remove_triggers),
    ]
