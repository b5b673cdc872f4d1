"""Sessions get a short code a person gives the robot (`--session CODE`); labels record
that they disagree with the task's success check. Existing sessions get codes here; the
column becomes required and unique in 0007 (PostgreSQL will not alter a table in the
transaction that updated its rows)."""

import secrets

from django.db import migrations, models

# Frozen copies: a migration must not change when the model's code does.
ALPHABET = "ACDEFGHJKMNPQRTUVWXY34679"
LENGTH = 6


def give_sessions_codes(apps, schema_editor):
    Session = apps.get_model("teleop", "Session")
    taken = set()
    for session in Session.objects.filter(code=None).only("pk").iterator():
        code = None
        while code is None or code in taken:
            code = "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))
        taken.add(code)
        Session.objects.filter(pk=session.pk).update(code=code)


class Migration(migrations.Migration):
    dependencies = [("teleop", "0005_episode_keyset_indexes")]

    operations = [
        migrations.AddField(
            model_name="session",
            name="code",
            field=models.CharField(editable=False, max_length=12, null=True),
        ),
        migrations.RunPython(give_sessions_codes, migrations.RunPython.noop),
        migrations.AddField(
            model_name="label",
            name="check_disagrees",
            field=models.BooleanField(default=False),
        ),
    ]
