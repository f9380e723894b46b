"""The service never imports torch: it must start from the runtime dependencies alone."""

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# Every module the service or its commands load, and the torch-free part of model/; not the
# feedback store's migrations, scripts that Alembic runs inside its own context.
APP_MODULES = sorted(
    ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
    for path in (REPO / "app").rglob("*.py")
    if "migrations" not in path.parts
)
SERVICE_MODULES = [*APP_MODULES, "model.spec", "model.files", "model.bitmaps", "model.cli"]


def test_the_service_modules_load_no_torch(fresh_python) -> None:
    assert "app.main" in SERVICE_MODULES and "app.imaging.frame" in SERVICE_MODULES
    script = (
        f"import importlib, sys\n"
        f"for name in {SERVICE_MODULES!r}:\n"
        f"    importlib.import_module(name)\n"
        f"loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'training'))\n"
        f"assert not loaded, loaded\n"
    )
    result = fresh_python(script)
    assert result.returncode == 0, result.stderr


def test_the_lenet5_command_for_serving_loads_no_torch(fresh_python) -> None:
    script = (
        "import sys\n"
        "from model import cli\n"
        "cli.load('serve'), cli.load('predict')\n"
        "assert 'torch' not in sys.modules\n"
    )
    result = fresh_python(script)
    assert result.returncode == 0, result.stderr
