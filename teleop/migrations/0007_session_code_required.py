from django.db import migrations, models

import teleop.models


class Migration(migrations.Migration):
    dependencies = [("teleop", "0006_session_code_label_check_disagrees")]

    operations = [
        migrations.AlterField(
            model_name="session",
            name="code",
            field=models.CharField(
                default=teleop.models.new_session_code, editable=False, max_length=12, unique=True
            ),
        ),
    ]
