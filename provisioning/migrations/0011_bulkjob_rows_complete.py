from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("provisioning", "0010_bulkjob_alive_until"),
    ]

    operations = [
        migrations.AddField(
            model_name="bulkjob",
            name="rows_complete",
            field=models.BooleanField(db_default=True, default=True),
        ),
    ]
