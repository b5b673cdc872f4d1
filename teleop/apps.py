from django.apps import AppConfig


class TeleopConfig(AppConfig):
    name = "teleop"
    verbose_name = "Teleoperation and datasets"

    def ready(self) -> None:
        from teleop import (
            consent,  # noqa: F401 - marks episodes when consent is withdrawn
            erasure,  # noqa: F401 - its part of erasing an operator
        )
