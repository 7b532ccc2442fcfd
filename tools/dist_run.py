"""torchrun for tools/dist_launch.sh: a failed run ends with its processes' own messages.

    python tools/dist_run.py [torchrun args...] TOOL [TOOL args...]

torchrun reports a failed process with its ``ChildFailedError`` traceback and an error log
line after the process's own ``nose_mm: error:`` line. Here the processes' output is all
there is: the exit status is 2 when a process exited with 2 (a user error, already printed
by it), else that of the first failed process, with one line naming it.
"""
import logging
import sys


def main(argv=None) -> int:
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import main as torchrun

    # torchrun's agent logs each failure at ERROR level before raising; the raise says it
    logging.getLogger('torch.distributed.elastic.multiprocessing.api').setLevel(
        logging.CRITICAL)
    try:
        torchrun(sys.argv[1:] if argv is None else argv)
    except ChildFailedError as exc:
        failures = sorted(exc.failures.items())
        codes = [failure.exitcode for _, failure in failures]
        if 2 in codes:
            return 2
        rank, failure = failures[0]
        print(f'nose_mm: error: process {rank} of {exc.name} exited with status '
              f'{failure.exitcode} (a negative status is the signal that ended it); its output '
              f'is above', file=sys.stderr)
        return failure.exitcode if 0 < failure.exitcode < 256 else 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
