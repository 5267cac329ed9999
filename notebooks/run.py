"""Executes the notebooks headless (nbclient), as CI does: each from notebooks/, figures into $MOE_NOTEBOOK_OUT.
Prints one line per notebook and exits non-zero, with the failing cell's error, if any notebook breaks.
Nothing is written back: the committed notebooks stay without outputs.

    .venv/bin/python notebooks/run.py [NAME.ipynb ...]
"""
import os
import sys
import time

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

HERE = os.path.dirname(os.path.abspath(__file__))


def main(names):
    names = names or sorted(f for f in os.listdir(HERE) if f.endswith('.ipynb'))
    failed = 0
    for name in names:
        nb = nbformat.read(os.path.join(HERE, name), as_version=4)
        t0 = time.time()
        try:
            NotebookClient(nb, timeout=600, kernel_name='python3', resources={'metadata': {'path': HERE}}).execute()
            print(f'ok {name} ({time.time() - t0:.1f} s)')
        except CellExecutionError as err:
            failed += 1
            print(f'FAILED {name}: {err}', file=sys.stderr)
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
