from django.db import migrations


def load_catalogue(apps, schema_editor):
    from visits.catalogue import CATALOGUE

    Definition = apps.get_model("visits", "ObservationDefinition")
    for d in CATALOGUE:
        Definition.objects.update_or_create(
            code=d.code,
            defaults={
                "display": d.display, "category": d.category, "unit": d.unit,
                "alternative_units": list(d.alternative_units), "decimals": d.decimals,
                "plausible_low": d.plausible[0], "plausible_high": d.plausible[1],
                "normal_low": d.normal[0], "normal_high": d.normal[1],
                "critical_low": d.critical[0], "critical_high": d.critical[1],
            },
        )


class Migration(migrations.Migration):
    dependencies = [("visits", "0001_initial")]
    operations = [migrations.RunPython(load_catalogue, migrations.RunPython.noop)]
