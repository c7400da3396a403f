from loyalty.models import ProgramSettings


def program_settings_get() -> ProgramSettings:
    """The program configuration, created with its defaults on first use."""
    program, _ = ProgramSettings.objects.get_or_create(pk=1)
    return program
