"""The tickrec benchmark suite: ``python -m bench``.

- :mod:`bench.synth`: a deterministic synthetic Gemini v1 day, written
  through the dataset contract and cached on disk;
- :mod:`bench.flow`: the seeded order flow behind it;
- :mod:`bench.changes`: the day's book changes, decoded once for every peer,
  and the checksums that prove all books agree;
- :mod:`bench.peers`: the baselines and peers (a naive dict-and-sort book,
  ``sortedcontainers``, the ``order-book`` C extension, tardis-dev under node);
- :mod:`bench.subject`: tickrec itself, through its replay API;
- :mod:`bench.processes`: end-to-end ``tickrec replay`` and the recorder, as
  child processes;
- :mod:`bench.__main__`: the command that runs everything and prints the table.
"""
