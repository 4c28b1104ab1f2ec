from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("provisioning", "0009_directory_sync_state"),
    ]

    operations = [
        migrations.AddField(
            model_name="bulkjob",
            name="alive_until",
            field=models.DateTimeField(blank=True, null=True),
        ),
    ]
