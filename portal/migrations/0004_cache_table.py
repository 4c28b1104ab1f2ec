"""The database cache's table (settings.CACHES when the broker is not Redis), so `migrate` alone
prepares the throttles' shared counters (docs/architecture.md §5 "Web")."""

from django.conf import settings
from django.core.management import call_command
from django.db import migrations


def cache_table_create(apps, schema_editor) -> None:
    call_command("createcachetable", database=schema_editor.connection.alias, verbosity=0)


def cache_table_drop(apps, schema_editor) -> None:
    table = schema_editor.connection.ops.quote_name(settings.CACHE_TABLE)
    schema_editor.execute(f"DROP TABLE IF EXISTS {table}")


class Migration(migrations.Migration):
    dependencies = [("portal", "0003_user_manages_all_stores")]

    operations = [migrations.RunPython(cache_table_create, cache_table_drop)]
