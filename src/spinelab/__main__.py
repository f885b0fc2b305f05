from spinelab.cli import entry

entry()
