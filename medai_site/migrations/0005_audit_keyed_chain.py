"""Keyed audit chain and token identity: chain version and key id per record, the API token an
audit record was made through, who created a token; a statement-level trigger refusing TRUNCATE.

Records written before this migration keep their unkeyed SHA-256 hashes (chain version 1) and
are never rewritten: audit_verify checks them as they are, and new records (version 2) chain on
from the last of them with HMAC-SHA256 under AUDIT_CHAIN_KEY.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

# The row-level function of migration 0004 raises for any TG_OP, statement-level TRUNCATE included.
POSTGRES_NO_TRUNCATE = """
DROP TRIGGER IF EXISTS medai_audit_no_truncate ON medai_site_auditevent;
CREATE TRIGGER medai_audit_no_truncate BEFORE TRUNCATE ON medai_site_auditevent
    FOR EACH STATEMENT EXECUTE FUNCTION medai_audit_append_only();
"""
POSTGRES_DROP = "DROP TRIGGER IF EXISTS medai_audit_no_truncate ON medai_site_auditevent;"
# SQLite has no TRUNCATE (DELETE without WHERE fires the row trigger), but adding columns with a
# foreign key rebuilds the table, which drops its triggers: put migration 0004's back.
SQLITE_APPEND_ONLY = [
    """CREATE TRIGGER IF NOT EXISTS medai_audit_no_update BEFORE UPDATE ON medai_site_auditevent
       BEGIN SELECT RAISE(ABORT, 'medai_site_auditevent is append-only: UPDATE refused'); END;""",
    """CREATE TRIGGER IF NOT EXISTS medai_audit_no_delete BEFORE DELETE ON medai_site_auditevent
       BEGIN SELECT RAISE(ABORT, 'medai_site_auditevent is append-only: DELETE refused'); END;""",
]


def install_triggers(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    statements = {"postgresql": [POSTGRES_NO_TRUNCATE], "sqlite": SQLITE_APPEND_ONLY}.get(vendor, [])
    for sql in statements:
        schema_editor.execute(sql)


def remove_triggers(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(POSTGRES_DROP)


class Migration(migrations.Migration):
    dependencies = [
        ("medai_site", "0004_audit_chain"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name="apitoken",
            name="created_by",
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name="+", to=settings.AUTH_USER_MODEL),
        ),
        migrations.AddField(
            model_name="auditevent",
            name="api_token",
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name="+", to="medai_site.apitoken"),
        ),
        # Existing records are version 1 (unkeyed SHA-256); the column's default becomes 2 below.
        # Adding a column with a default rewrites no row, so the UPDATE trigger does not fire.
        migrations.AddField(
            model_name="auditevent",
            name="chain_version",
            field=models.PositiveSmallIntegerField(default=1, editable=False),
            preserve_default=False,
        ),
        migrations.AlterField(
            model_name="auditevent",
            name="chain_version",
            field=models.PositiveSmallIntegerField(default=2, editable=False),
        ),
        migrations.AddField(
            model_name="auditevent",
            name="key_id",
            field=models.CharField(blank=True, editable=False, max_length=16),
        ),
        migrations.AlterField(
            model_name="auditevent",
            name="action",
            field=models.CharField(choices=[("view", "View"), ("search_hit", "Search Hit"), ("create", "Create"), ("update", "Update"), ("export", "Export"), ("advice", "Advice"), ("denied", "Denied"), ("delete", "Delete")], max_length=16),
        ),
        migrations.RunPython(install_triggers, remove_triggers),
    ]
