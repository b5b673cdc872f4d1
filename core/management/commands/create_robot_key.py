"""`manage.py create_robot_key <robot>`: issue an API key and print it alone on stdout, so a
script can capture it (`KEY=$(python manage.py create_robot_key demo-arm-1)`)."""

import uuid
from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from core.models import Robot
from core.services import robots as robot_services


class Command(BaseCommand):
    help = "Issue a new API key for a robot (by name or id) and print it on stdout."

    def add_arguments(self, parser):
        parser.add_argument("robot", help="robot name (or id)")
        parser.add_argument("--team", help="team slug, when several teams have the name")
        parser.add_argument("--name", default="", help="a label for the key")
        parser.add_argument(
            "--expires-in-days",
            type=float,
            default=None,
            help="expire the key after this many days (default: never)",
        )

    def handle(self, *args, robot, team, name, expires_in_days, **options):
        robots = Robot.objects.select_related("team")
        matches = robots.filter(name=robot)
        if team:
            matches = matches.filter(team__slug=team)
        if not matches.exists():
            try:
                matches = robots.filter(pk=uuid.UUID(robot))
            except ValueError:  # not a UUID either
                matches = robots.none()
        found = list(matches[:2])
        if not found:
            raise CommandError(f"No robot named '{robot}'.")
        if len(found) > 1:
            raise CommandError(f"Several teams have a robot '{robot}'; pass --team.")
        expires_at = None
        if expires_in_days is not None:
            if expires_in_days <= 0:
                raise CommandError("--expires-in-days must be positive.")
            expires_at = timezone.now() + timedelta(days=expires_in_days)
        _, clear = robot_services.issue_api_key(
            actor=None, robot=found[0], name=name, expires_at=expires_at
        )
        self.stdout.write(clear)
