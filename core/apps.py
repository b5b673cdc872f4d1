from django.apps import AppConfig
from django.db.models.signals import pre_save


class CoreConfig(AppConfig):
    name = "core"
    verbose_name = "Proving Ground core"

    def ready(self) -> None:
        from core.names import refuse_bidi_names

        pre_save.connect(refuse_bidi_names, dispatch_uid="core.names.refuse_bidi_names")
