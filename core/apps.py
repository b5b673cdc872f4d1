from django.apps import AppConfig
from django.core.management import call_command
from django.db.models.signals import post_migrate, pre_save


class CoreConfig(AppConfig):
    name = "core"
    verbose_name = "Proving Ground core"

    def ready(self) -> None:
        from core import checks  # noqa: F401 - registers the system checks
        from core.names import refuse_bidi_names

        pre_save.connect(refuse_bidi_names, dispatch_uid="core.names.refuse_bidi_names")
        post_migrate.connect(_create_cache_table, sender=self)


def _create_cache_table(sender, using, verbosity=0, **kwargs) -> None:
    """The default cache is the database's: its table is made wherever migrations run
    (`manage.py migrate`, the test databases), so no deployment forgets it. Idempotent."""
    call_command("createcachetable", database=using, verbosity=verbosity)
