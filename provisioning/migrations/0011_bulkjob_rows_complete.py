from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("provisioning", "0008_mfa_coverage_and_renewal"),
    ]

    operations = [
        migrations.AddField(
            model_name="bulkjob",
            name="rows_complete",
            field=models.BooleanField(db_default=True, default=True),
        ),
    ]
