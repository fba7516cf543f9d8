"""Active learning for the EMBER malware model, speaking the Alectio protocol.

- :mod:`.processes`: ``train``/``test``/``infer``/``getdatasetstate`` with Alectio's exact contracts.
- :mod:`.loop`: one platform loop (``/one_loop``): read the labelled indices from the bucket, run
  the processes, write the loop's files back.
- :mod:`.storage`: the bucket behind a small interface (a local folder by default).
- :mod:`.jobs`: loops as background jobs whose state lives in files, so every gunicorn worker sees it.
- :mod:`.strategies`: query strategies that pick the next records to label from infer outputs.
- :mod:`.experiment`: a whole local experiment and its learning curve (``vigil ember active-learning``).
"""
