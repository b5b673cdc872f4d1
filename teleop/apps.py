from django.apps import AppConfig


class TeleopConfig(AppConfig):
    name = "teleop"
    verbose_name = "Teleoperation and datasets"
