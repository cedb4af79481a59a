"""Results stored before `mirrored` was a field of the result JSON get it, read once from the
pipeline's note ("...looked mirrored..."), so that corrections need no sentence matching."""
from django.db import migrations

MIRRORED_NOTE = "looked mirrored"


def add_mirrored(apps, schema_editor):
    for name in ("Analysis", "MaskVersion"):
        model = apps.get_model("TumorApp", name)
        for row in model.objects.all().iterator():
            if row.result and "mirrored" not in row.result:
                row.result["mirrored"] = any(MIRRORED_NOTE in n for n in row.notes or [])
                row.save(update_fields=["result"])


class Migration(migrations.Migration):

    dependencies = [
        ("TumorApp", "0007_audit_series_actions"),
    ]

    operations = [
        migrations.RunPython(add_mirrored, migrations.RunPython.noop),
    ]
