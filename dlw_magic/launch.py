"""TEMPORARY STUB (the convert helper replaces it): run a converted notebook script."""
import runpy
import sys

if __name__ == "__main__":
    sys.argv = sys.argv[1:]
    runpy.run_path(sys.argv[0], run_name="__main__")
