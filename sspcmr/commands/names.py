"""The command words the dispatcher picks by, importable without torch or Lightning."""

# These go to LightningCLI (sspcmr.commands.training); every other word is a plain argparse command.
TRAINING_COMMANDS = ("fit", "validate", "test", "predict")
