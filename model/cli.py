"""The `lenet5` command: train, evaluate, blend, export (need the `train` extra), serve,
predict, read, feedback."""

import argparse
import importlib
import sys
from types import ModuleType

# Subcommand -> module with add_arguments(parser) and main(args). Imported only when
# chosen, so the service's commands never import torch.
COMMANDS = {
    "train": ("training.train", "train LeNet-5 on MNIST"),
    "evaluate": ("training.evaluate", "report test error beside the paper's results"),
    "blend": ("training.blend", "blend a fine-tuned checkpoint back toward its base"),
    "export": ("training.export", "export a checkpoint to the ONNX file the service runs"),
    "serve": ("app.serve", "run the web service (uvicorn)"),
    "predict": ("app.predict_cli", "read the digits in image files, offline"),
    "read": ("app.read_cli", "read the numbers (one line of digits) in image files, offline"),
    "feedback": ("app.feedback.cli", "export the stored corrections as a dataset; migrate"),
}
NEEDS_TRAIN_EXTRA = {"train", "evaluate", "blend", "export"}


def load(command: str) -> ModuleType:
    try:
        return importlib.import_module(COMMANDS[command][0])
    except ModuleNotFoundError as exc:
        if command in NEEDS_TRAIN_EXTRA and exc.name in ("torch", "onnx", "matplotlib", "tqdm"):
            raise SystemExit(
                f"lenet5 {command} needs the training tools ({exc.name} is missing): "
                "pip install 'lenet5[train]'"
            ) from None
        raise


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="lenet5", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (_, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    chosen = next((arg for arg in argv if not arg.startswith("-")), None)
    if chosen not in COMMANDS:
        parser.parse_args(argv)  # prints usage, or the error for an unknown command
        return 2
    module = load(chosen)
    # Raw: the module docstrings hold example commands that must keep their lines.
    command_parser = argparse.ArgumentParser(
        prog=f"lenet5 {chosen}",
        description=module.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    module.add_arguments(command_parser)
    args = command_parser.parse_args(argv[argv.index(chosen) + 1 :])
    return int(module.main(args))


if __name__ == "__main__":
    sys.exit(main())
